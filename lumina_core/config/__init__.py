"""Recipe configuration: the schema (``schema.py``), loading with overrides and validation."""
