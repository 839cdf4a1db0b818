"""The edges: reading and writing tables, MLflow, run directories, locks."""
