"""``nlu-bootstrap augment``: write new annotated utterances with a trained generator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan.sampling import METHODS


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True,
                        help="run id | name@alias | models:/name@alias | a saved generator dir")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--count", type=int, default=1000,
                        help="utterances to write, split like the training data")
    parser.add_argument("--quota", action="append", default=[], metavar="INTENT=N",
                        help="write N utterances of INTENT (repeatable; replaces --count)")
    parser.add_argument("--language", help="only this language (default: as in training)")
    parser.add_argument("--sampling", choices=METHODS, default="top-p")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--gate", action="store_true",
                        help="filter through the quality gate (malformed, duplicates, copies of "
                        "--train, and --min-discriminator-score)")
    parser.add_argument("--train", type=Path,
                        help="the real training data, for the gate's copy check")
    parser.add_argument("--min-discriminator-score", type=float)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", default="conll", help="output format: conll, jsonl, ...")


def _quotas(values: list[str]) -> dict[str, int] | None:
    if not values:
        return None
    quotas = {}
    for value in values:
        intent, _, count = value.rpartition("=")
        if not intent or not count.isdigit():
            raise ValueError(f"--quota: expected INTENT=N, got {value!r}")
        quotas[intent] = int(count)
    return quotas


def run(args: argparse.Namespace) -> int:
    from gan.augment import Augmenter
    from gan.sampling import SamplingConfig
    from nlu.formats import read_utterances, write_utterances
    from nlu.tracking import ModelNotFoundError, resolve_tracking_uri

    sampling = SamplingConfig(method=args.sampling, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p)
    gate = train = None
    if args.gate or args.min_discriminator_score is not None:
        from gan.gate import GateConfig

        gate = GateConfig(min_discriminator_score=args.min_discriminator_score,
                          drop_train_copies=args.train is not None)
        train = read_utterances(args.train) if args.train else None
    try:
        if Path(args.generator).is_dir():
            augmenter = Augmenter.from_dir(args.generator)
        else:
            augmenter = Augmenter.load(args.generator, resolve_tracking_uri(args.tracking_uri))
    except ModelNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    utterances = list(augmenter.generate(args.count, sampling=sampling, seed=args.seed,
                                         quotas=_quotas(args.quota), language=args.language,
                                         gate=gate, train=train, batch_size=args.batch_size))
    write_utterances(utterances, args.out, args.format)
    report = augmenter.last_gate_report
    gate_note = f"; gate: {report.as_dict()}" if report is not None else ""
    print(f"wrote {len(utterances)} utterances to {args.out} ({args.format}){gate_note}")
    return 0
