"""``nlu-bootstrap augment``: write new annotated utterances with a trained generator
(``--method generator``, the default), or refilled copies of real ones (``--method refill``:
every slot value redrawn from a catalogue and the data's own values, or from the own values
alone when there is no catalogue; no generator)."""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from gan.catalogue import DEFAULT_CATALOGUE_SHARE
from gan.lexicon import SLOT_VALUE_SOURCES
from gan.sampling import METHODS
from nlu.formats import FORMATS
from service.commands import Interrupted, UsageError, count_of, interruptible, number

MAX_SEED = 2 ** 63 - 1  # the wire's int64
PROGRESS_SECONDS = 10.0  # at most one progress line this often
AUGMENT_METHODS = ("generator", "refill")
# Options of one method only, with their defaults: given to the other, a usage error.
GENERATOR_OPTIONS = {"generator": None, "tracking_uri": None, "quota": [], "slot_quota": [],
                     "sampling": "top-p", "temperature": 1.0, "top_k": 0, "top_p": 0.9,
                     "batch_size": 256, "gate": False, "train": None,
                     "min_discriminator_score": None, "agree_with": None, "slot_values": None,
                     "lexicon": None}
REFILL_OPTIONS = {"data": None}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=AUGMENT_METHODS, default="generator",
                        help="generator: a trained generator writes them (default); refill: "
                        "copies of --data with every slot value redrawn from --catalogue and "
                        "the data's own values (the baseline a catalogue allows, no generator), "
                        "or from the own values alone without --catalogue")
    parser.add_argument("--generator",
                        help="run id | name@alias | models:/name@alias | a saved generator dir "
                        "(`nlu-bootstrap models` lists the registered ones; --method "
                        "generator needs it)")
    parser.add_argument("--data", type=Path, metavar="REAL_FILE",
                        help="--method refill: the real annotated utterances to copy (any "
                        "format `data` reads)")
    parser.add_argument("--catalogue", type=Path, metavar="FILE",
                        help="slot values a team brings: TSV lines slot_type<TAB>value"
                        "[<TAB>language] ('#' comments), or an annotated file whose spans "
                        "become values; they fill a delexicalised generator's placeholders "
                        "beside its own values (replacing the catalogue it keeps from its "
                        "job, if any), or the refilled copies")
    parser.add_argument("--catalogue-share", type=number(float, low=0, high=1), metavar="R",
                        help="chance a slot value comes from --catalogue rather than the own "
                        f"values, 0..1 (default {DEFAULT_CATALOGUE_SHARE} with --catalogue; "
                        "alone: the share of the catalogue the generator keeps, default its "
                        "job's share)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--count", type=number(int, low=1), default=1000,
                        help="utterances to write, split like the training data")
    parser.add_argument("--quota", action="append", default=[], metavar="INTENT=N",
                        type=count_of("INTENT"),
                        help="write N utterances of INTENT (repeatable; replaces --count)")
    parser.add_argument("--slot-quota", action="append", default=[], metavar="SLOT=N",
                        type=count_of("SLOT"),
                        help="write N utterances with a span of slot type SLOT, for the "
                        "intents it was seen with (repeatable; replaces --count)")
    parser.add_argument("--language", help="only this language (default: as in training); "
                        "also the language of --catalogue lines that name none (default: the "
                        "generator's or the data's only language)")
    parser.add_argument("--sampling", choices=METHODS, default=GENERATOR_OPTIONS["sampling"],
                        help="how G picks words")
    parser.add_argument("--temperature", type=number(float, low=0, above_low=True),
                        default=GENERATOR_OPTIONS["temperature"], help="softmax temperature")
    parser.add_argument("--top-k", type=number(int, low=0), default=GENERATOR_OPTIONS["top_k"],
                        help="keep the k likeliest words (0: all)")
    parser.add_argument("--top-p", type=number(float, low=0, high=1, above_low=True),
                        default=GENERATOR_OPTIONS["top_p"],
                        help="nucleus: keep the likeliest words up to this mass")
    parser.add_argument("--seed", type=number(int, low=0, high=MAX_SEED),
                        help="the same seed and generator write the same utterances "
                        "(default: drawn at random, printed and kept in each utterance's id)")
    parser.add_argument("--batch-size", type=number(int, low=1),
                        default=GENERATOR_OPTIONS["batch_size"],
                        help="utterances sampled at once")
    parser.add_argument("--gate", action="store_true",
                        help="filter through the quality gate (malformed, duplicates, copies of "
                        "the generator's training data or of --train, "
                        "--min-discriminator-score and --agree-with)")
    parser.add_argument("--train", type=Path,
                        help="real data for the gate's copy check (default: the data the "
                        "generator was trained on, kept with it)")
    parser.add_argument("--min-discriminator-score", type=number(float, low=0, high=1),
                        metavar="SCORE", help="the gate drops what D scores below this (0..1)")
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
    parser.add_argument("--out", type=Path, required=True,
                        help="output file (or folder for xsid-pair, jointbert); its name sets "
                        "the format, as for `data convert`")
    parser.add_argument("--format", "--to", dest="format", choices=sorted(FORMATS),
                        help="output format (default: from the --out name; .gz compresses)")
    # Remote generation through a running `nlu-bootstrap serve` (service.client).
    remote = parser.add_argument_group("remote", "generate on a server instead of locally")
    remote.add_argument("--server", metavar="HOST:PORT",
                        help="stream from this server; --generator must be name@alias or a run "
                        "id (refill sends --data and --catalogue along)")
    remote.add_argument("--token", help="bearer token for the server (default $NLU_BOOTSTRAP_TOKEN)")
    remote.add_argument("--tls-ca", type=Path, help="PEM certificate to trust for a TLS server")
    remote.add_argument("--timeout", type=number(float, low=0, above_low=True), default=600.0,
                        help="deadline in seconds")


def _quotas(values: list[tuple[str, int]]) -> dict[str, int] | None:
    return dict(values) if values else None


def _checked(args: argparse.Namespace) -> tuple[str, int]:
    """The output format and the seed, checked and chosen before anything loads."""
    from nlu.formats import output_format

    fmt = args.format or output_format(args.out)  # FormatError names --out's file
    _check_method_options(args)
    for flag in ("train", "lexicon", "data", "catalogue"):
        path = getattr(args, flag)
        if path is not None and not path.exists():
            raise UsageError(f"--{flag}: no such file or folder: {path}")
    if (args.quota or args.slot_quota) and not _requested(args.count, _quotas(args.quota),
                                                          _quotas(args.slot_quota)):
        raise UsageError("--quota/--slot-quota: they ask for 0 utterances (they replace "
                         "--count); give at least one a count above 0")
    seed = args.seed if args.seed is not None else random.randrange(MAX_SEED)
    if args.seed is None:
        print(f"seed {seed} (drawn at random; --seed {seed} writes the same again)",
              file=sys.stderr)
    return fmt, seed


def _check_method_options(args: argparse.Namespace) -> None:
    """Each method's required options given, the other method's not."""
    other = GENERATOR_OPTIONS if args.method == "refill" else REFILL_OPTIONS
    given = [name for name, default in other.items() if getattr(args, name) != default]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags}: not an option of --method {args.method}")
    if args.method == "generator" and args.generator is None:
        raise UsageError("--generator: required (--method generator); or use --method refill")
    if args.method == "refill" and args.data is None:
        raise UsageError("--method refill: needs --data (the real utterances)")
    if args.method == "refill" and args.catalogue is None and args.catalogue_share is not None:
        raise UsageError("--catalogue-share: needs --catalogue (without one, refill redraws "
                         "the data's own values)")


def _share(args: argparse.Namespace) -> float:
    return DEFAULT_CATALOGUE_SHARE if args.catalogue_share is None else args.catalogue_share


def _refill_values(args: argparse.Namespace) -> str:
    """Where a refill drew its values, for the closing line."""
    return (f"catalogue share {_share(args):g}" if args.catalogue is not None
            else "the data's own values, no catalogue")


def _read_catalogue(args: argparse.Namespace, language: str | None, slot_types):
    """``--catalogue`` read and checked (errors name its file:line), its counts on stderr."""
    from gan.catalogue import read_catalogue

    catalogue, report = read_catalogue(args.catalogue, language=language, slot_types=slot_types)
    print(report.summary(), file=sys.stderr)
    return catalogue


def _only(values) -> str | None:
    """The one value of ``values``, if it has exactly one."""
    values = set(values)
    return next(iter(values)) if len(values) == 1 else None


def _with_progress(utterances: Iterable, requested: int, report=None) -> Iterator:
    """The utterances as they come, with a line on stderr every ``PROGRESS_SECONDS``: a gated
    call (``--agree-with`` above all) can run for minutes."""
    start = last = time.monotonic()
    written = 0
    for utterance in utterances:
        written += 1
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS:
            last = now
            sampled = f", {report.seen:,} sampled" if report is not None else ""
            print(f"augment: {written:,} of {requested:,} written{sampled} after "
                  f"{now - start:.0f} s", file=sys.stderr)
        yield utterance


def _collect(utterances: Iterable, requested: int, out: Path, report=None) -> list:
    """Every utterance, with progress; Ctrl-C or SIGTERM stops it with nothing written."""
    collected: list = []
    try:
        with interruptible():
            for utterance in _with_progress(utterances, requested, report):
                collected.append(utterance)
    except Interrupted as stop:
        raise stop.with_message(f"stopped after {len(collected):,} of {requested:,} "
                                f"utterances; nothing written to {out}") from None
    return collected


def _gated(args: argparse.Namespace) -> bool:
    """Does the call ask for the quality gate (directly or by one of its options)?"""
    return args.gate or args.min_discriminator_score is not None or args.agree_with is not None


def _load(reference: str, tracking_uri: str | None, from_dir, from_store):
    """A model from a local directory, else from the tracking store."""
    from nlu.tracking import resolve_tracking_uri

    if Path(reference).is_dir():
        return from_dir(reference)
    return from_store(reference, resolve_tracking_uri(tracking_uri))


def _requested(count: int, *quotas: dict[str, int] | None) -> int:
    """What a call asks for: the quotas' sum if any are given (they replace --count)."""
    given = [quota for quota in quotas if quota]
    return sum(sum(quota.values()) for quota in given) if given else count


def run(args: argparse.Namespace) -> int:
    fmt, seed = _checked(args)
    if args.method == "refill":
        return _run_refill(args, fmt, seed)
    if args.server:
        return _run_remote(args, fmt, seed)
    from gan.augment import Augmenter
    from gan.sampling import SamplingConfig
    from nlu.formats import read_utterances, write_utterances
    from nlu.tracking import ModelNotFoundError
    from service.commands.models import not_found

    try:
        sampling = SamplingConfig(method=args.sampling, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p)
    except ValueError as error:  # the message starts with the field name
        return _bad_argument(error)
    quotas, slot_quotas = _quotas(args.quota), _quotas(args.slot_quota)
    gate = train = None
    if _gated(args):
        from gan.gate import GateConfig

        gate = GateConfig(min_discriminator_score=args.min_discriminator_score,
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
        raise UsageError(not_found(error)) from None
    catalogue = None
    if args.catalogue is not None:
        catalogue = _read_catalogue(args, args.language or _only(augmenter.info.languages),
                                    augmenter.info.slot_types)
    elif augmenter.catalogue is not None:
        share = augmenter.catalogue_share if args.catalogue_share is None else args.catalogue_share
        print(f"catalogue: the generator's own, {augmenter.catalogue.size()} values, share "
              f"{share:g} (--catalogue replaces it)", file=sys.stderr)
    elif args.catalogue_share is not None:
        raise UsageError("--catalogue-share: needs --catalogue (this generator keeps no "
                         "catalogue of its own)")
    if gate is not None and train is None and augmenter.train_keys is None:
        print("warning: this generator was saved without its training data's keys: no copy "
              "check unless --train names that data", file=sys.stderr)
    try:  # generate checks its arguments before it generates anything
        generation = augmenter.generate(args.count, sampling=sampling, seed=seed,
                                        quotas=quotas, slot_quotas=slot_quotas,
                                        language=args.language, gate=gate, train=train,
                                        nlu_model=nlu_model, batch_size=args.batch_size,
                                        lexicon=lexicon, slot_values=args.slot_values,
                                        catalogue=catalogue,
                                        catalogue_share=args.catalogue_share)
    except ValueError as error:
        return _bad_argument(error)
    requested = _requested(args.count, quotas, slot_quotas)
    utterances = _collect(generation, requested, args.out, generation.report)
    write_utterances(utterances, args.out, fmt)
    report = generation.report
    gate_note = f"; gate: {report.as_dict()}" if report is not None else ""
    print(f"wrote {len(utterances)} utterances to {args.out} ({fmt}, seed {seed}){gate_note}")
    _warn_if_short(len(utterances), requested)
    return 0


def _run_refill(args: argparse.Namespace, fmt: str, seed: int) -> int:
    """``--method refill``: copies of ``--data`` with their slot values redrawn."""
    from gan.catalogue import SlotFiller, catalogue_from_utterances, refill
    from nlu.formats import read_utterances, write_utterances

    real = read_utterances(args.data)
    catalogue = None if args.catalogue is None else _read_catalogue(
        args, args.language or _only(u.language for u in real),
        {slot for utterance in real for slot in utterance.slot_types})
    if args.server:
        return _refill_remote(args, fmt, seed, real, catalogue)
    filler = SlotFiller(catalogue_from_utterances(real), catalogue,
                        0.0 if catalogue is None else _share(args))
    utterances = refill(real, filler, count=args.count, seed=seed)
    write_utterances(utterances, args.out, fmt)
    print(f"wrote {len(utterances)} refilled copies of {len(real)} utterances to {args.out} "
          f"({fmt}, seed {seed}, {_refill_values(args)})")
    return 0


def _refill_remote(args: argparse.Namespace, fmt: str, seed: int, real, catalogue) -> int:
    """``--method refill --server``: the same refill, done by the server."""
    import grpc

    from nlu.formats import write_utterances
    from service import client

    try:
        with _channel(args) as channel:
            stream = client.refill(channel, real, catalogue, args.count, timeout=args.timeout,
                                   catalogue_share=None if catalogue is None else _share(args),
                                   seed=seed, language=args.language or "")
            utterances = _collect(stream, args.count, args.out)
    except grpc.RpcError as error:
        print(f"error: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2
    write_utterances(utterances, args.out, fmt)
    print(f"wrote {len(utterances)} refilled copies from {args.server} to {args.out} "
          f"({fmt}, seed {seed}, {_refill_values(args)})")
    return 0


def _channel(args: argparse.Namespace):
    import os

    from service import client

    token = args.token or os.environ.get("NLU_BOOTSTRAP_TOKEN")
    return client.connect(args.server, token=token, tls_ca=args.tls_ca)


FLAGS = {"quotas": "--quota", "slot_quotas": "--slot-quota"}  # library field -> flag


def _bad_argument(error: ValueError) -> int:
    """The library's "field: problem" as the flag's error (``top_k`` is ``--top-k``); exit 2."""
    field, _, problem = str(error).partition(":")
    print(f"error: {FLAGS.get(field, '--' + field.replace('_', '-'))}:{problem}",
          file=sys.stderr)
    return 2


def _warn_if_short(written: int, requested: int) -> None:
    if written < requested:
        print(f"warning: {written} of the {requested} requested: the gate or the slot quotas "
              "left too few within the attempt budget", file=sys.stderr)


def _run_remote(args: argparse.Namespace, fmt: str, seed: int) -> int:
    """``--server``: the same request, generated by the server and streamed back."""
    import grpc

    from nlu.formats import read_utterances, write_utterances
    from service import client

    if args.train is not None:
        print("error: --train: a server checks copies against the data the generator was "
              "trained on (kept with it); --train is for local generation", file=sys.stderr)
        return 2
    quotas, slot_quotas = _quotas(args.quota), _quotas(args.slot_quota)
    sampling = client.sampling_options(args.sampling, temperature=args.temperature,
                                       top_k=args.top_k, top_p=args.top_p)
    gated = _gated(args)
    try:
        with _channel(args) as channel:
            catalogue = None
            if args.catalogue is not None:  # read here, so errors name its file:line
                info = client.describe_generator(channel, args.generator, timeout=args.timeout)
                catalogue = _read_catalogue(args, args.language or _only(info.languages),
                                            info.slot_types)
            stream = client.augment(
                channel, args.generator, _requested(args.count, quotas, slot_quotas),
                timeout=args.timeout, sampling=sampling, seed=seed, quotas=quotas,
                slot_quotas=slot_quotas,
                language=args.language or "", deduplicate=gated,
                min_discriminator_score=args.min_discriminator_score, agree_with=args.agree_with,
                slot_values=args.slot_values,
                lexicon=read_utterances(args.lexicon) if args.lexicon else (),
                catalogue=catalogue, catalogue_share=args.catalogue_share)
            requested = _requested(args.count, quotas, slot_quotas)
            try:
                utterances = _collect(stream, requested, args.out)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                raise UsageError(f"{args.server}: NOT_FOUND: {error.details()}"
                                 f"{_servers_generators(client, channel)}") from None
    except grpc.RpcError as error:
        print(f"error: {args.server}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2
    write_utterances(utterances, args.out, fmt)
    gate_note = ""
    if gated and stream.gate_report is not None:
        gate_note = "; gate: " + ", ".join(f"{field.name} {value}" for field, value
                                           in stream.gate_report.ListFields())
    print(f"wrote {len(utterances)} utterances from {args.server} to {args.out} "
          f"({fmt}, seed {seed}){gate_note}")
    _warn_if_short(len(utterances), requested)
    return 0


def _servers_generators(client, channel) -> str:
    """"; it has: a@x, b@y" for a NOT_FOUND message (empty if the listing fails too)."""
    import grpc

    try:
        generators = client.list_generators(channel, timeout=10)
    except grpc.RpcError:
        return ""
    references = [f"{entry.name}@{alias}" for entry in generators
                  for alias in sorted(entry.alias_versions)] or ["none"]
    return f"; its registered generators: {', '.join(references)}"
