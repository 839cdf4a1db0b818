"""MLflow "models from code" entry: loading a registered model runs this file.

Logging a file instead of a pickled object means loading never unpickles arbitrary code.
"""

from mlflow.models import set_model

from tasks.core.inference import MlpipePyfunc

set_model(MlpipePyfunc())
