"""``nlu-bootstrap predict``: parse utterances with a trained NLU model, and score it.

Input (``INPUT``, a file, or ``-``/nothing for stdin):

* text, one utterance a line (``--format text``, the default for stdin and for names no
  annotated format claims); blank lines are skipped. Raw text is split into words as the
  training data was (``nlu.parse.tokenize``); ``--pretokenized`` takes lines of
  space-separated words instead, which languages written without spaces (ja, th, zh) need;
* any annotated format the project reads (``--format``, else detected from the name): its
  tokens are parsed, and its gold labels are what ``--evaluate`` scores against.

Output (``--out``, written atomically, else stdout): ``--to parses`` (default), one JSON parse
a line (intent, probability, ranking, tags, slots with character offsets for raw text), or any
annotated format (the predicted utterances). ``--evaluate`` prints intent accuracy, slot F1,
exact match and SemER overall and per language with standard errors (``nlu.metrics``, as
training reports them) and ``--log-to-experiment NAME`` logs them to an MLflow run.

``--server HOST:PORT`` parses on a running ``nlu-bootstrap serve`` instead (``NluService``,
``--model`` a registered ``name@alias`` or run id; ``--token``, ``--tls-ca`` as for
``augment --server``): the input is read and checked here, sent in ``ParseStream`` messages,
and written or scored the same way.

Bad input, an unknown model or language: a one-line message, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError, NluDataError
from nlu.formats import FORMATS, detect_format, read_utterances, write_utterances
from nlu.utterance import Utterance
from service.commands import number

TEXT_FORMAT = "text"
PARSES = "parses"
STDIN = "-"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", default=STDIN, metavar="INPUT",
                        help="text lines or an annotated file (default: stdin)")
    parser.add_argument("--model", required=True,
                        help="name@alias | models:/name@alias | run id | a saved model folder")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--format", choices=[TEXT_FORMAT, *sorted(FORMATS)],
                        help="input format (default: detected from the name; text for stdin "
                        "and other names)")
    parser.add_argument("--language", help="the input's language (default: the model's, if "
                        "it has one; annotated files: the file's own)")
    parser.add_argument("--pretokenized", action="store_true",
                        help="text lines hold space-separated words (needed for ja, th, zh)")
    parser.add_argument("--to", choices=[PARSES, *sorted(FORMATS)], default=PARSES,
                        help="output: parses (JSON lines, default) or an annotated format")
    parser.add_argument("--out", type=Path,
                        help="output file (or folder for xsid-pair, jointbert); default stdout")
    parser.add_argument("--top-k", type=number(int, low=1), default=3,
                        help="intents in each parse's ranking (default 3)")
    parser.add_argument("--batch-size", type=number(int, low=1), default=256)
    parser.add_argument("--evaluate", action="store_true",
                        help="score the predictions against the input's gold labels and print "
                        "the metrics (predictions are written only with --out)")
    parser.add_argument("--log-to-experiment", metavar="NAME",
                        help="with --evaluate: log the metrics to a new run of this MLflow "
                        "experiment")
    # Remote parsing through a running `nlu-bootstrap serve` (service.client).
    remote = parser.add_argument_group("remote", "parse on a server instead of locally")
    remote.add_argument("--server", metavar="HOST:PORT",
                        help="parse on this server; --model must be name@alias or a run id")
    remote.add_argument("--token",
                        help="bearer token for the server (default $NLU_BOOTSTRAP_TOKEN)")
    remote.add_argument("--tls-ca", type=Path, help="PEM certificate to trust for a TLS server")
    remote.add_argument("--timeout", type=number(float, low=0, above_low=True), default=600.0,
                        help="deadline in seconds")


@dataclass(frozen=True)
class Item:
    """One input utterance: raw text or words, its language, where it is, and any gold."""

    text_or_words: str | tuple[str, ...]
    language: str
    path: str
    line: int | None
    gold: Utterance | None = None


def run(args: argparse.Namespace) -> int:
    if args.log_to_experiment and not args.evaluate:
        raise NluDataError("needs --evaluate (it logs the evaluation)",
                           field="--log-to-experiment")
    if args.server:
        import grpc

        try:
            items, parses = _parse_remotely(args)
        except grpc.RpcError as error:
            print(f"error: {args.server}: {error.code().name}: {error.details()}",
                  file=sys.stderr)
            return 2
    else:
        model = _load_model(args.model, args.tracking_uri)
        items = read_items(args, model.languages)
        parses = parse_locally(model, items, args)
    if args.evaluate:
        return _evaluate(args, items, parses)
    _write(args, items, parses)
    return 0


def _load_model(reference: str, tracking_uri: str | None):
    from nlu.tracking import ModelNotFoundError, resolve_tracking_uri
    from nlu.training import TrainedNlu

    try:
        if Path(reference).is_dir():
            return TrainedNlu.load(reference)
        return TrainedNlu.from_store(reference, resolve_tracking_uri(tracking_uri))
    except (ModelNotFoundError, FileNotFoundError) as error:
        raise NluDataError(str(error), field="--model") from None


# -- input -----------------------------------------------------------------------------------

def read_items(args: argparse.Namespace, model_languages: Sequence[str]) -> list[Item]:
    """The input's utterances: text lines or the utterances of an annotated file."""
    fmt = args.format or _detected_format(args.input)
    if fmt == TEXT_FORMAT:
        items = _text_items(args.input, _language(args.language, model_languages),
                            args.pretokenized)
    else:
        if args.input == STDIN:
            raise NluDataError(f"{fmt} input is read from a file, not stdin", field="--format")
        items = [Item(utterance.tokens, utterance.language, *_where(utterance, args.input),
                      gold=utterance)
                 for utterance in read_utterances(args.input, fmt, language=args.language)]
    if not items:
        raise NluDataError("no utterances to parse", path=_shown(args.input))
    if args.evaluate and items[0].gold is None:
        raise NluDataError("--evaluate needs gold labels: give an annotated file, not text",
                           field="--evaluate")
    return items


def _detected_format(path: str) -> str:
    if path == STDIN:
        return TEXT_FORMAT
    if not Path(path).exists():
        raise FormatError("no such file or folder", path=path)
    try:
        return detect_format(path)
    except FormatError:
        return TEXT_FORMAT


def _language(language: str | None, model_languages: Sequence[str]) -> str:
    if language:
        return language
    if len(model_languages) == 1:
        return model_languages[0]
    known = f"the model knows {', '.join(model_languages)}" if model_languages else \
        "the model does not say which it knows"
    raise NluDataError(f"give the text's language ({known})", field="--language")


def _text_items(path: str, language: str, pretokenized: bool) -> list[Item]:
    try:
        content = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise NluDataError(f"not UTF-8 text ({error.reason} at byte {error.start})",
                           path=_shown(path)) from None
    items = []
    for line_number, line in enumerate(content.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            items.append(Item(tuple(line.split()) if pretokenized else line, language,
                              _shown(path), line_number))
    return items


def _where(utterance: Utterance, path: str) -> tuple[str, int | None]:
    """The file and line an annotated utterance was read from (its ``source``)."""
    source, _, line = (utterance.source or "").rpartition(":")
    return (source, int(line)) if line.isdigit() else (path, None)


def _shown(path: str) -> str:
    return "<stdin>" if path == STDIN else path


# -- parsing ---------------------------------------------------------------------------------

def parse_locally(model, items: Sequence[Item], args: argparse.Namespace) -> list:
    """Every item's ``Parse`` from the model in this process; an input error names its
    file and line."""
    from nlu.parse import ParseInputError, parse_by_language

    try:
        return parse_by_language(model, [item.text_or_words for item in items],
                                 [item.language for item in items], top_k=args.top_k,
                                 batch_size=args.batch_size)
    except ParseInputError as error:
        raise _located(error, items) from None


def _parse_remotely(args: argparse.Namespace) -> tuple[list[Item], list]:
    """The input's items and their parses from ``--server``: one ``ParseStream`` per
    language. The inputs are checked here first, by the checks the server runs, so that an
    error names its file and line."""
    from nlu.parse import ParseInputError, prepare_inputs
    from service import client

    token = args.token or os.environ.get("NLU_BOOTSTRAP_TOKEN")
    with client.connect(args.server, token=token, tls_ca=args.tls_ca) as channel:
        described = client.describe_model(channel, args.model, timeout=args.timeout)
        items = read_items(args, tuple(described.languages))
        positions_by_language: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            positions_by_language.setdefault(item.language, []).append(position)
        parses: list = [None] * len(items)
        for language, positions in positions_by_language.items():
            inputs = [items[position].text_or_words for position in positions]
            try:
                prepare_inputs(inputs, language)
            except ParseInputError as error:
                raise _located(error, [items[position] for position in positions]) from None
            stream = client.parse_stream(channel, args.model, inputs, language=language,
                                         top_k=args.top_k, timeout=args.timeout)
            for position, parse in zip(positions, stream):
                parses[position] = parse
    return items, parses


def _located(error, items: Sequence[Item]):
    """An ``inputs[i]`` error of the parse API as an error at item ``i``'s file and line."""
    from nlu.parse import ParseInputError

    field = error.field or ""
    if not field.startswith("inputs["):
        return error
    item = items[int(field[len("inputs["):-1])]
    return ParseInputError(error.message, path=item.path, line=item.line)


# -- output ----------------------------------------------------------------------------------

def _predicted(items: Sequence[Item], parses: Sequence) -> list[Utterance]:
    """The predictions as utterances (an annotated input's keep its id, text, source...)."""
    return [item.gold.replace(intent=parse.intent, tags=parse.tags) if item.gold is not None
            else parse.to_utterance() for item, parse in zip(items, parses)]


def _write(args: argparse.Namespace, items: Sequence[Item], parses: Sequence) -> None:
    if args.to == PARSES:
        lines = [json.dumps(_record(item, parse), ensure_ascii=False) + "\n"
                 for item, parse in zip(items, parses)]
        if args.out is None:
            sys.stdout.writelines(lines)
            return
        from nlu.atomic import atomic_open

        with atomic_open(args.out) as stream:
            stream.writelines(lines)
    elif args.out is not None:
        write_utterances(_predicted(items, parses), args.out, args.to)
    else:
        if FORMATS[args.to].writes_folder:
            raise NluDataError(f"{args.to} writes a folder: give --out", field="--to")
        with tempfile.TemporaryDirectory(prefix="nlu-bootstrap-predict-") as scratch:
            written = Path(scratch) / f"predictions.{args.to}"
            write_utterances(_predicted(items, parses), written, args.to)
            sys.stdout.write(written.read_text(encoding="utf-8"))
    if args.out is not None:
        print(f"wrote {len(parses):,} parses to {args.out} ({args.to})", file=sys.stderr)


def _record(item: Item, parse) -> dict:
    """A parse as one JSON line (with the input utterance's id, when it has one)."""
    record = parse.to_dict()
    if item.gold is not None and item.gold.id is not None:
        record = {"id": item.gold.id, **record}
    return record


def _evaluate(args: argparse.Namespace, items: Sequence[Item], parses: Sequence) -> int:
    from nlu.metrics import evaluate

    gold = [item.gold for item in items]
    report = evaluate(gold, _predicted(items, parses))
    if args.out is not None:
        _write(args, items, parses)
    print(report.to_markdown(), end="")
    if args.log_to_experiment:
        print(_log(args, report))
    return 0


def _log(args: argparse.Namespace, report) -> str:
    """Log the evaluation as a new run of ``--log-to-experiment``; return a line saying where."""
    import mlflow

    from nlu.tracking import redact_uri, resolve_tracking_uri, start_run

    uri = resolve_tracking_uri(args.tracking_uri)
    with start_run(args.log_to_experiment, uri, run_name=f"evaluate {Path(args.input).name}",
                   tags={"kind": "evaluation"}) as active:
        mlflow.log_params({"model": args.model[:500], "input": str(args.input)[:500]})
        mlflow.log_metrics(report.flat("test"))
        mlflow.log_text(report.to_markdown(), "reports/test.md")
        mlflow.log_dict(report.to_dict(), "reports/test.json")
    return f"logged to MLflow run {active.info.run_id} in {redact_uri(uri)}"
