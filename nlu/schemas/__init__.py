"""Bundled label-schema mappings (YAML), loaded by name with ``nlu.schema.LabelMapping.load``."""
