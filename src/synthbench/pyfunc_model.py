"""MLflow "models from code" entry: logged as the model's code, run by ``mlflow.pyfunc.load_model`` to build
the predictor (no pickled Python objects in the registry)."""

import mlflow

from synthbench.classifier import PyfuncTextClassifier

mlflow.models.set_model(PyfuncTextClassifier())
