"""MLflow helpers shared by every job: where runs go, how models are stored and found again.

* Tracking store: ``--tracking-uri`` if given, else ``$MLFLOW_TRACKING_URI``, else an embedded
  sqlite store ``sqlite:///.nlu-bootstrap/mlflow.db`` with artifacts beside it (MLflow's
  ``./mlruns`` file store is deprecated and refuses to start without an opt-in).
* A model is a plain directory (weights + vocabulary + config) logged as the run artifact
  ``model/`` (an NLU model's inside an MLflow pyfunc model, ``nlu.pyfunc``, where
  ``find_model_folder`` finds it); it can be registered under a name with an alias and is
  found again by any of ``<run id>``, ``runs:/<run id>/model``, ``models:/<name>@<alias>``
  or ``<name>@<alias>``.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import yaml

from nlu.errors import NluDataError

Loaded = TypeVar("Loaded")

DEFAULT_HOME = Path(".nlu-bootstrap")
MODEL_ARTIFACT = "model"
MLMODEL_FILENAME = "MLmodel"  # marks an MLflow model folder (an NLU model's, nlu.pyfunc)
PYFUNC_ARTIFACT = "nlu"  # the name of the plain model folder among its artifacts


class TrackingServerUnreachable(NluDataError):
    """An MLflow server URI that does not answer its health check."""


SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "token", "secret", "key")


def redact_uri(uri: str) -> str:
    """``uri`` fit to print or log: a password or token in it (``https://user:token@host``,
    ``https://token@host``, ``postgresql://user:pw@host/db``, ``?token=...``) replaced by
    ``***``. A bare user name is masked too, since a token often stands alone there."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc and not parts.query:
        return uri  # urlunsplit would turn sqlite:////abs/path into sqlite://abs/path
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:***" if parts.password is not None else "***"
        parts = parts._replace(netloc=f"{user}@{host}")
    if parts.query:
        pairs = [(name, "***" if any(key in name.lower() for key in SECRET_QUERY_KEYS)
                  else value) for name, value in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(pairs, safe="*"))
    return urlunsplit(parts)


def _check_server(uri: str) -> None:
    """Fail fast, before any local state is written, if an http(s) tracking server is down
    (MLflow's own client retries for minutes)."""
    import urllib.error
    import urllib.request

    shown = redact_uri(uri)
    url, authorization = _without_credentials(uri)
    request = urllib.request.Request(f"{url.rstrip('/')}/health")
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5):
            return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerUnreachable(f"the MLflow server {shown} does not answer ({reason})",
                                        field="tracking URI") from None


def _without_credentials(uri: str) -> tuple[str, str | None]:
    """``uri`` without its user info, and the ``Authorization`` header that carries it as
    MLflow's client sends it: ``user:password@`` as Basic auth (percent-decoded), else
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (Basic) or ``MLFLOW_TRACKING_TOKEN`` (Bearer).
    urllib would take ``user:password@host`` for the host name."""
    parts = urlsplit(uri)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        user = os.environ["MLFLOW_TRACKING_USERNAME"]
        password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return uri, f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    if not user and not password:
        return urlunsplit(parts), None
    basic = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return urlunsplit(parts), f"Basic {basic}"


def resolve_tracking_uri(uri: str | None = None, home: Path | str | None = None) -> str:
    """The tracking URI to use; creates the embedded sqlite store's folder when needed, and
    checks that a server URI answers."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        if uri.startswith(("http://", "https://")):
            _check_server(uri)
        return uri
    home = Path(home or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of an embedded sqlite store live beside the database, not in ``./mlruns``."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(name: str, tracking_uri: str) -> str:
    """Id of experiment ``name``, created (with a proper artifact location) if missing."""
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = _artifact_root(tracking_uri)
    location = f"{root}/{name}" if root else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def start_run(experiment: str, tracking_uri: str, *, run_name: str | None = None,
              run_id: str | None = None, tags: dict[str, str] | None = None):
    """``mlflow.start_run`` on the right store and experiment; ``run_id`` resumes a run."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if run_id is not None:
        return mlflow.start_run(run_id=run_id)
    return mlflow.start_run(experiment_id=experiment_id(experiment, tracking_uri),
                            run_name=run_name, tags=tags)


def flatten_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}`` with values cut to MLflow's param length limit."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat


def log_config(config: dict[str, Any], filename: str = "config.yaml") -> None:
    """Log a resolved config as flat params and, whole, as a YAML artifact (params are cut)."""
    import mlflow

    mlflow.log_params(flatten_params(config))
    mlflow.log_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), filename)


def log_model_dir(local_dir: Path | str, *, registered_name: str | None = None,
                  alias: str | None = None) -> str:
    """Log ``local_dir`` as the active run's ``model/`` artifact; optionally register it.

    Returns the model's reference (``name@alias``, ``name/version`` or the run id).
    """
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_model_dir needs an active MLflow run")
    mlflow.log_artifacts(str(local_dir), artifact_path=MODEL_ARTIFACT)
    if registered_name is None:
        return run.info.run_id
    return register_model(run.info.run_id, registered_name, alias, mlflow.get_tracking_uri())


def register_model(run_id: str, name: str, alias: str | None, tracking_uri: str) -> str:
    """Register run ``run_id``'s ``model/`` artifact as a new version of ``name``."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as error:
        if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    source = f"{mlflow_client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    version = mlflow_client.create_model_version(name, source=source, run_id=run_id)
    if alias:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
        return f"{name}@{alias}"
    return f"{name}/{version.version}"


class ModelNotFoundError(LookupError):
    """A model reference names no run, registered model or alias in the tracking store.

    ``str()`` names the store (redacted) for logs and the CLI; ``for_client()`` does not, for
    messages sent to a server's clients.
    """

    def __init__(self, what: str, tracking_uri: str | None = None):
        self.what = what
        self.tracking_uri = tracking_uri
        super().__init__(f"{what} in {redact_uri(tracking_uri)}" if tracking_uri else what)

    def for_client(self) -> str:
        return f"{self.what} in the server's store" if self.tracking_uri else self.what


def model_run_id(reference: str, tracking_uri: str) -> str:
    """The run that produced the model ``reference`` (run id, runs:/ URI or name@alias)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    reference = reference.removeprefix("models:/")
    try:
        if reference.startswith("runs:/"):
            return reference[len("runs:/"):].split("/", 1)[0]
        if "@" in reference:
            name, alias = reference.rsplit("@", 1)
            return mlflow_client.get_model_version_by_alias(name, alias).run_id
        if "/" in reference:
            name, version = reference.rsplit("/", 1)
            return mlflow_client.get_model_version(name, version).run_id
        return mlflow_client.get_run(reference).info.run_id
    except MlflowException as error:
        raise ModelNotFoundError(f"no model {reference!r}", tracking_uri) from error


def download_model(reference: str, tracking_uri: str, destination: Path | str) -> Path:
    """Download the ``model/`` directory that ``reference`` names into ``destination``; return
    the local path of the model folder (inside it, when it is an MLflow pyfunc model)."""
    import mlflow.artifacts

    run_id = model_run_id(reference, tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=MODEL_ARTIFACT, dst_path=str(destination),
            tracking_uri=tracking_uri)
    except Exception as error:  # mlflow raises several types for a missing artifact
        raise ModelNotFoundError(f"run {run_id} has no {MODEL_ARTIFACT}/ artifact") from error
    return find_model_folder(Path(local))


def find_model_folder(directory: Path) -> Path:
    """``directory`` itself, or for an MLflow pyfunc model folder (``nlu.pyfunc``) the plain
    model folder among its artifacts (where its ``MLmodel`` file says it is)."""
    mlmodel = directory / MLMODEL_FILENAME
    if not mlmodel.exists():
        return directory
    flavor = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))["flavors"].get(
        "python_function", {})
    relative = flavor.get("artifacts", {}).get(PYFUNC_ARTIFACT, {}).get("path")
    if relative is None:
        raise ModelNotFoundError(f"{directory} is an MLflow model without an nlu-bootstrap "
                                 f"model (no {PYFUNC_ARTIFACT!r} artifact)")
    return directory / relative


def load_model(reference: str, tracking_uri: str, load_dir: Callable[[Path], Loaded]) -> Loaded:
    """The model ``reference`` names in the store, downloaded to a scratch folder and read by
    ``load_dir``, which must read everything into memory: the download is not kept."""
    with tempfile.TemporaryDirectory(prefix="nlu-bootstrap-model-") as scratch:
        return load_dir(download_model(reference, tracking_uri, scratch))


GENERATOR_RUN_TAG = ("kind", "gan")  # the tag gan.training.train_gan puts on its runs


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: its kind, its aliases, and its latest version and that one's run."""

    name: str
    kind: str  # "generator" (its run is tagged kind=gan) or "nlu" (any other)
    latest_version: str
    latest_run_id: str
    alias_versions: dict[str, str] = field(default_factory=dict)  # alias -> version

    def references(self) -> list[str]:
        return [f"{self.name}@{alias}" for alias in sorted(self.alias_versions)] or [self.name]


def registered_models(tracking_uri: str) -> list[RegisteredModel]:
    """Every registered model with at least one version, generators first, then by name."""
    mlflow_client = client(tracking_uri)
    found = []
    for model in mlflow_client.search_registered_models():
        versions = mlflow_client.search_model_versions(f"name = '{model.name}'")
        if not versions:
            continue
        latest = max(versions, key=lambda version: int(version.version))
        tag, value = GENERATOR_RUN_TAG
        kind = ("generator" if mlflow_client.get_run(latest.run_id).data.tags.get(tag) == value
                else "nlu")
        found.append(RegisteredModel(model.name, kind, str(latest.version), latest.run_id,
                                     {alias: str(version)
                                      for alias, version in (model.aliases or {}).items()}))
    return sorted(found, key=lambda entry: (entry.kind != "generator", entry.name))
