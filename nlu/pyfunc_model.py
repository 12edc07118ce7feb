"""The code MLflow runs to build the NLU pyfunc model when it loads one ("models from code":
the model folder holds this file, not a pickled object). See ``nlu.pyfunc``."""

from mlflow.models import set_model

from nlu.pyfunc import NluPythonModel

set_model(NluPythonModel())
