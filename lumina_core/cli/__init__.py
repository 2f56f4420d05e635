"""The ``lumina`` command line (entry point ``lumina_core.cli.main:main``)."""
