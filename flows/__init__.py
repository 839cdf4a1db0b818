"""Prefect flows of mlpipe and the `mlpipe` command line; flows only wire tasks."""
