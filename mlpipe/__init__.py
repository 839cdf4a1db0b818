"""mlpipe: the library behind the flows. All domain logic lives here, importable without Prefect.

Layers (enforced by ``tests/unit/test_dependency_rules.py``):

- ``mlpipe.serving``: the code shipped inside every registered model; imports only itself and
  the runtime libraries (numpy, pandas, torch, scikit-learn, joblib, pydantic, mlflow).
- ``mlpipe.data``, ``mlpipe.quality``, ``mlpipe.learn``, ``mlpipe.reports``: pure logic on frames
  and arrays.
- ``mlpipe.io``: the edges (one table reader/writer, one MLflow module, run directories).
- ``mlpipe.orchestration``: the one adapter that talks to Prefect; ``mlpipe.cli`` uses it.
"""

__version__ = "0.2.0"
