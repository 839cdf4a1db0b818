"""Shared building blocks of the stages: config, data, schema, MLflow, GX, networks."""
