"""Built-in modality plugins. Each subpackage registers itself on import and is found by entry point."""
