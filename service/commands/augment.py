"""``nlu-bootstrap augment``: write new annotated utterances with a trained generator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan.lexicon import SLOT_VALUE_SOURCES
from gan.sampling import METHODS
from service.commands import number


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True,
                        help="run id | name@alias | models:/name@alias | a saved generator dir")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--count", type=int, default=1000,
                        help="utterances to write, split like the training data")
    parser.add_argument("--quota", action="append", default=[], metavar="INTENT=N",
                        help="write N utterances of INTENT (repeatable; replaces --count)")
    parser.add_argument("--slot-quota", action="append", default=[], metavar="SLOT=N",
                        help="write N utterances with a span of slot type SLOT, for the "
                        "intents it was seen with (repeatable; replaces --count)")
    parser.add_argument("--language", help="only this language (default: as in training)")
    parser.add_argument("--sampling", choices=METHODS, default="top-p")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--gate", action="store_true",
                        help="filter through the quality gate (malformed, duplicates, copies of "
                        "--train, --min-discriminator-score and --agree-with)")
    parser.add_argument("--train", type=Path,
                        help="the real training data, for the gate's copy check")
    parser.add_argument("--min-discriminator-score", type=float)
    parser.add_argument("--agree-with", metavar="NLU_MODEL",
                        help="keep only utterances whose intent and tags this NLU model, trained "
                        "on the real data, predicts too (run id | name@alias; locally also a "
                        "saved model dir)")
    parser.add_argument("--slot-values", choices=SLOT_VALUE_SOURCES,
                        help="where slot values come from: the generator writes them "
                        "(generated), or a delexicalised generator fills its placeholders from "
                        "its training data (generator-lexicon) or from --lexicon "
                        "(given-lexicon); default: what the generator does")
    parser.add_argument("--lexicon", type=Path, metavar="FILE",
                        help="annotated utterances whose slot values fill a delexicalised "
                        "generator's placeholders (any format `data` reads)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", default="conll", help="output format: conll, jsonl, ...")
    # Remote generation through a running `nlu-bootstrap serve` (service.client).
    remote = parser.add_argument_group("remote", "generate on a server instead of locally")
    remote.add_argument("--server", metavar="HOST:PORT",
                        help="stream from this server; --generator must be name@alias or a run id")
    remote.add_argument("--token", help="bearer token for the server (default $NLU_BOOTSTRAP_TOKEN)")
    remote.add_argument("--tls-ca", type=Path, help="PEM certificate to trust for a TLS server")
    remote.add_argument("--timeout", type=number(float, low=0, above_low=True), default=600.0, help="deadline in seconds")


def _quotas(values: list[str], option: str = "--quota",
            name: str = "INTENT") -> dict[str, int] | None:
    if not values:
        return None
    quotas = {}
    for value in values:
        key, _, count = value.rpartition("=")
        if not key or not count.isdigit():
            raise ValueError(f"{option}: expected {name}=N, got {value!r}")
        quotas[key] = int(count)
    return quotas


def _slot_quotas(values: list[str]) -> dict[str, int] | None:
    return _quotas(values, "--slot-quota", "SLOT")


def _requested(count: int, *quotas: dict[str, int] | None) -> int:
    """What a call asks for: the quotas' sum if any are given (they replace --count)."""
    given = [quota for quota in quotas if quota]
    return sum(sum(quota.values()) for quota in given) if given else count


def _gated(args: argparse.Namespace) -> bool:
    """Does the call ask for the quality gate (directly or by one of its options)?"""
    return args.gate or args.min_discriminator_score is not None or args.agree_with is not None


def _load(reference: str, tracking_uri: str | None, from_dir, from_store):
    """A model from a local directory, else from the tracking store."""
    from nlu.tracking import resolve_tracking_uri

    if Path(reference).is_dir():
        return from_dir(reference)
    return from_store(reference, resolve_tracking_uri(tracking_uri))


def run(args: argparse.Namespace) -> int:
    if args.server:
        return _run_remote(args)
    from gan.augment import Augmenter
    from gan.sampling import SamplingConfig
    from nlu.formats import read_utterances, write_utterances
    from nlu.tracking import ModelNotFoundError

    try:
        sampling = SamplingConfig(method=args.sampling, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p)
    except ValueError as error:  # the message starts with the field name
        return _bad_argument(error)
    quotas, slot_quotas = _quotas(args.quota), _slot_quotas(args.slot_quota)
    if _requested(args.count, quotas, slot_quotas) < 1:  # as the server refuses it
        return _bad_argument(ValueError(f"count: must be >= 1 (with the quotas), got "
                                        f"{_requested(args.count, quotas, slot_quotas)}"))
    gate = train = None
    if _gated(args):
        from gan.gate import GateConfig

        gate = GateConfig(min_discriminator_score=args.min_discriminator_score,
                          drop_train_copies=args.train is not None,
                          nlu_agreement=args.agree_with is not None)
        train = read_utterances(args.train) if args.train else None
    lexicon = None
    if args.lexicon is not None:
        from gan.lexicon import SlotLexicon

        lexicon = SlotLexicon.build(read_utterances(args.lexicon))
    try:
        augmenter = _load(args.generator, args.tracking_uri, Augmenter.from_dir, Augmenter.load)
        nlu_model = None
        if args.agree_with is not None:
            from nlu.training import TrainedNlu

            nlu_model = _load(args.agree_with, args.tracking_uri, TrainedNlu.load,
                              TrainedNlu.from_store)
    except ModelNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:  # generate checks its arguments before it generates anything
        generation = augmenter.generate(args.count, sampling=sampling, seed=args.seed,
                                        quotas=quotas, slot_quotas=slot_quotas,
                                        language=args.language, gate=gate, train=train,
                                        nlu_model=nlu_model, batch_size=args.batch_size,
                                        lexicon=lexicon, slot_values=args.slot_values)
    except ValueError as error:
        return _bad_argument(error)
    utterances = list(generation)
    write_utterances(utterances, args.out, args.format)
    report = generation.report
    gate_note = f"; gate: {report.as_dict()}" if report is not None else ""
    print(f"wrote {len(utterances)} utterances to {args.out} ({args.format}){gate_note}")
    _warn_if_short(len(utterances), _requested(args.count, quotas, slot_quotas))
    return 0


def _bad_argument(error: ValueError) -> int:
    """The library's "field: problem" as the flag's error (``top_k`` is ``--top-k``); exit 2."""
    field, _, problem = str(error).partition(":")
    print(f"error: --{field.replace('_', '-')}:{problem}", file=sys.stderr)
    return 2


def _warn_if_short(written: int, requested: int) -> None:
    if written < requested:
        print(f"warning: {written} of the {requested} requested: the gate or the slot quotas "
              "left too few within the attempt budget", file=sys.stderr)


def _run_remote(args: argparse.Namespace) -> int:
    """``--server``: the same request, generated by the server and streamed back."""
    import os

    import grpc

    from nlu.formats import read_utterances, write_utterances
    from service import client

    if args.train is not None:
        print("error: --train: the copy check runs only locally (a server has no training "
              "data to compare with)", file=sys.stderr)
        return 2
    quotas, slot_quotas = _quotas(args.quota), _slot_quotas(args.slot_quota)
    sampling = client.sampling_options(args.sampling, temperature=args.temperature,
                                       top_k=args.top_k, top_p=args.top_p)
    gated = _gated(args)
    token = args.token or os.environ.get("NLU_BOOTSTRAP_TOKEN")
    try:
        with client.connect(args.server, token=token, tls_ca=args.tls_ca) as channel:
            stream = client.augment(
                channel, args.generator, _requested(args.count, quotas, slot_quotas),
                timeout=args.timeout, sampling=sampling, seed=args.seed, quotas=quotas,
                slot_quotas=slot_quotas,
                language=args.language or "", deduplicate=gated,
                min_discriminator_score=args.min_discriminator_score, agree_with=args.agree_with,
                slot_values=args.slot_values,
                lexicon=read_utterances(args.lexicon) if args.lexicon else ())
            utterances = list(stream)
    except grpc.RpcError as error:
        print(f"error: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2
    write_utterances(utterances, args.out, args.format)
    gate_note = ""
    if gated and stream.gate_report is not None:
        gate_note = "; gate: " + ", ".join(f"{field.name} {value}" for field, value
                                           in stream.gate_report.ListFields())
    print(f"wrote {len(utterances)} utterances from {args.server} to {args.out} "
          f"({args.format}){gate_note}")
    _warn_if_short(len(utterances), _requested(args.count, quotas, slot_quotas))
    return 0
