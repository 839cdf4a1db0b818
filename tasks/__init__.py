"""Pipeline stages, one per module: thin Prefect tasks over pure functions."""
