"""Pipeline stages, one per module: thin Prefect tasks (read, call the library, write, log).

A stage never imports another stage; what stages hand each other lives in ``mlpipe.handoff``.
"""
