"""The code shipped inside every registered model.

It imports only itself (relative imports) and the runtime libraries the model pins: numpy, pandas,
torch, scikit-learn, joblib, pydantic and mlflow. At registration it is copied into the model as
the package ``mlpipe_serving``, so a model never depends on the training code base.
"""
