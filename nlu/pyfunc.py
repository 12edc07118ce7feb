"""The trained NLU model as an MLflow ``pyfunc`` model, and how every one is logged.

``log_nlu_model`` writes the model folder (``TrainedNlu.save``) into the active run as its
``model/`` artifact in MLflow's model format: an ``MLmodel`` file, the code that builds this
module's ``NluPythonModel`` (``nlu/pyfunc_model.py``: MLflow's "models from code", nothing
pickled), a signature and an input example, and the plain folder itself among the artifacts. One copy serves both readers of a registered ``name@alias``:

* ``mlflow.pyfunc.load_model("models:/name@alias").predict(df)`` and
  ``mlflow models serve -m models:/name@alias --env-manager local``;
* ``TrainedNlu.from_store("name@alias")`` (and ``TrainedNlu.load`` on the folder), which
  find the plain folder inside.

Input: a ``pandas.DataFrame`` with a ``text`` column (raw text) or a ``tokens`` column (lists
of words: what languages written without spaces need), and optionally ``language`` (default:
the language the model was logged for). The ``top_k`` param (default 3) sizes the ranking.
Output: one ``nlu.parse.Parse.to_dict()`` record per row (intent, probability, ranking,
tokens, tags, slots with offsets). Bad input raises ``MlflowException`` with
``INVALID_PARAMETER_VALUE`` (HTTP 400 from ``mlflow models serve``) naming the row.

The serving environment needs this project installed (``--env-manager local`` in its
environment); the model pins ``nlu-bootstrap`` at the version that logged it.
"""

from __future__ import annotations

import json
import math
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from nlu.atomic import write_json
from nlu.errors import NluDataError
from nlu.tracking import PYFUNC_ARTIFACT

DEFAULT_TOP_K = 3
INPUT_EXAMPLE = {"text": ["wake me up at seven tomorrow"]}


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array, Object, Property

    def text(name: str, required: bool = True) -> Property:
        return Property(name, DataType.string, required=required)

    def number(name: str, dtype=DataType.long, required: bool = True) -> Property:
        return Property(name, dtype, required=required)

    inputs = Schema([ColSpec(DataType.string, "text", required=False),
                     ColSpec(Array(DataType.string), "tokens", required=False),
                     ColSpec(DataType.string, "language", required=False)])
    slot = Object([text("type"), text("value"), number("start"), number("end"),
                   number("start_char", required=False), number("end_char", required=False)])
    score = Object([text("intent"), number("probability", DataType.double)])
    outputs = Schema([ColSpec(DataType.string, "text", required=False),
                      ColSpec(Array(DataType.string), "tokens"),
                      ColSpec(DataType.string, "language"), ColSpec(DataType.string, "intent"),
                      ColSpec(DataType.double, "probability"), ColSpec(Array(score), "ranking"),
                      ColSpec(Array(DataType.string), "tags"), ColSpec(Array(slot), "slots")])
    params = ParamSchema([ParamSpec("top_k", DataType.long, DEFAULT_TOP_K)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class NluPythonModel(PythonModel):
    """``TrainedNlu.parse`` behind MLflow's pyfunc interface (see the module docstring)."""

    def load_context(self, context) -> None:
        from nlu.training import TrainedNlu

        self.model = TrainedNlu.load(context.artifacts[PYFUNC_ARTIFACT])
        self.language = (context.model_config or {}).get("language")

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[dict]:
        from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

        from nlu.parse import parse_by_language

        top_k = int((params or {}).get("top_k", DEFAULT_TOP_K))
        try:
            rows = self._rows(model_input)
            parses = parse_by_language(self.model, [item for _, item in rows],
                                       [language for language, _ in rows], top_k=top_k)
        except NluDataError as error:
            field = error.field or ""
            if field.startswith("inputs["):  # inputs[i] is row i
                field = f"row {field[len('inputs['):-1]}"
            message = f"{field}: {error.message}" if field else error.message
            raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE) from None
        return [parse.to_dict() for parse in parses]

    def _rows(self, frame: pd.DataFrame) -> list[tuple[str, str | list[str]]]:
        """``(language, text or words)`` per row of the input DataFrame."""
        from nlu.parse import ParseInputError

        columns = set(frame.columns)
        if not columns & {"text", "tokens"}:
            raise ParseInputError("the input needs a 'text' or a 'tokens' column", field="input")
        rows = []
        for index, record in enumerate(frame.to_dict(orient="records")):
            language = record.get("language")
            if _missing(language):
                language = self.language or (self.model.languages[0]
                                             if len(self.model.languages) == 1 else None)
            if language is None:
                raise ParseInputError(f"row {index}: give a 'language' (the model knows "
                                      f"{', '.join(self.model.languages)})", field="language")
            words = record.get("tokens")
            if words is not None and not (isinstance(words, float) and math.isnan(words)):
                rows.append((language, [str(word) for word in words]))
            elif not _missing(record.get("text")):
                rows.append((language, record["text"]))
            else:
                raise ParseInputError(f"row {index}: neither 'text' nor 'tokens'", field="input")
        return rows


def _requirements() -> list[str]:
    try:
        return [f"nlu-bootstrap=={metadata.version('nlu-bootstrap')}"]
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return ["nlu-bootstrap"]


def declare_language(model_dir: Path | str, language: str) -> None:
    """Add ``language`` to the languages saved with the model in ``model_dir`` (a zero-shot
    model is meant for a language none of its training data is in)."""
    from nlu.training import LABELS_FILENAME

    path = Path(model_dir) / LABELS_FILENAME
    labels = json.loads(path.read_text(encoding="utf-8"))
    labels["languages"] = sorted({*labels.get("languages", ()), language})
    write_json(path, labels)


def save_pyfunc(model_dir: Path | str, destination: Path | str, *,
                language: str | None = None) -> Path:
    """Write the MLflow pyfunc model folder for the model folder ``model_dir`` to
    ``destination`` (which must not exist); ``language`` is the default input language."""
    import warnings

    destination = Path(destination)
    example = dict(INPUT_EXAMPLE)
    known = _saved_languages(model_dir)
    if language or known:
        example["language"] = [language or known[0]]
    with warnings.catch_warnings():  # the signature's optional columns are intended
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            path=str(destination), python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={PYFUNC_ARTIFACT: str(Path(model_dir).resolve())},
            signature=_signature(), input_example=example,
            model_config={"language": language}, pip_requirements=_requirements())
    return destination


def _saved_languages(model_dir: Path | str) -> list[str]:
    from nlu.training import LABELS_FILENAME

    labels = json.loads((Path(model_dir) / LABELS_FILENAME).read_text(encoding="utf-8"))
    return labels.get("languages", [])


def log_nlu_model(model_dir: Path | str, *, registered_name: str | None = None,
                  alias: str | None = None, language: str | None = None) -> str:
    """Log the model folder ``model_dir`` as the active run's ``model/`` artifact, an MLflow
    pyfunc model (see the module docstring); register it as a new version of
    ``registered_name`` with ``alias`` when given. ``language`` (the job's target language)
    is declared as one the model knows and is the pyfunc's default input language.

    Returns the model's reference (``name@alias``, ``name/version`` or the run id), as
    ``nlu.tracking.log_model_dir`` does."""
    from nlu.tracking import log_model_dir

    if language is not None:
        declare_language(model_dir, language)
    with tempfile.TemporaryDirectory(prefix="nlu-bootstrap-pyfunc-") as scratch:
        folder = save_pyfunc(model_dir, Path(scratch) / "model", language=language)
        return log_model_dir(folder, registered_name=registered_name, alias=alias)
