"""MLflow "models from code" entry: loading a registered model runs this file.

The model's class is code shipped with the model, not a pickled object. The fitted preprocessor,
however, is a joblib pickle: loading it runs pickle, so :class:`MlpipePyfunc` verifies its SHA-256
(recorded at registration) before unpickling, and refuses a file that was changed.
"""

from mlflow.models import set_model
from mlpipe_serving.predictor import MlpipePyfunc

set_model(MlpipePyfunc())
