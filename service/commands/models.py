"""``nlu-bootstrap models``: the registered generators and NLU models, with their aliases.

Locally from the MLflow store; with ``--server`` from a running ``nlu-bootstrap serve``
(``ListGenerators``, and ``NluService.ListModels`` where the server has it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nlu.tracking import RegisteredModel


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                        "else the embedded sqlite store in .nlu-bootstrap/)")
    parser.add_argument("--kind", choices=("generator", "nlu"), help="only this kind")
    remote = parser.add_argument_group("remote", "list what a server offers")
    remote.add_argument("--server", metavar="HOST:PORT", help="ask this running server")
    remote.add_argument("--token", help="bearer token for the server (default $NLU_BOOTSTRAP_TOKEN)")
    remote.add_argument("--tls-ca", type=Path, help="PEM certificate to trust for a TLS server")


def not_found(error) -> str:
    """A ``ModelNotFoundError``'s message and the models that do exist in that store."""
    if error.tracking_uri is None:
        return str(error)
    try:
        from nlu.tracking import registered_models

        entries = registered_models(error.tracking_uri)
    except Exception:  # the listing is a courtesy: the error itself must get out
        return str(error)
    if not entries:
        return f"{error}; no model is registered there"
    return f"{error}; registered: " + ", ".join(
        f"{reference} ({entry.kind})" for entry in entries for reference in entry.references())


def _table(entries: list[RegisteredModel]) -> str:
    rows = [("kind", "name", "latest", "aliases")] + [
        (entry.kind, entry.name, entry.latest_version,
         ", ".join(f"{alias} -> v{version}"
                   for alias, version in sorted(entry.alias_versions.items()))
         or "-") for entry in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(f"{kind:<{widths[0]}}  {name:<{widths[1]}}  {latest:>{widths[2]}}  {aliases}"
                     for kind, name, latest, aliases in rows)


def run(args: argparse.Namespace) -> int:
    if args.server:
        return _run_remote(args)
    from nlu.tracking import redact_uri, registered_models, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    entries = [entry for entry in registered_models(tracking_uri)
               if args.kind is None or entry.kind == args.kind]
    if entries:
        print(_table(entries))
    print(f"{len(entries)} registered model(s) in {redact_uri(tracking_uri)}"
          + ("" if entries else ": `gan train` and `train` register them when their YAML "
             "names a registered_name"))
    return 0


def _run_remote(args: argparse.Namespace) -> int:
    import grpc

    from service import client

    token = args.token or os.environ.get("NLU_BOOTSTRAP_TOKEN")
    entries, note = [], ""
    try:
        with client.connect(args.server, token=token, tls_ca=args.tls_ca) as channel:
            if args.kind != "nlu":
                entries += [RegisteredModel(entry.name, "generator", entry.latest_version,
                                            entry.latest_run_id, dict(entry.alias_versions))
                            for entry in client.list_generators(channel)]
            if args.kind != "generator":
                entries_nlu, note = _remote_nlu_models(client, channel)
                entries += entries_nlu
    except grpc.RpcError as error:
        print(f"error: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2
    if entries:
        print(_table(entries))
    print(f"{len(entries)} registered model(s) on {args.server}{note}")
    return 0


def _remote_nlu_models(client, channel) -> tuple[list[RegisteredModel], str]:
    """The server's NLU models (NluService.ListModels), or none and a note saying why."""
    import grpc

    try:
        models = client.list_models(channel)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return [], " (generators only: this server has no NLU model listing)"
    return [RegisteredModel(model.name, "nlu", model.latest_version, model.latest_run_id,
                            dict(model.alias_versions)) for model in models], ""
