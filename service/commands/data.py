"""``nlu-bootstrap data stats|validate|convert|sample FILE...``: look at and reshape data.

Formats are detected from file names (``--format`` overrides; see ``nlu.formats``). Bad input
exits with code 2 and a ``file:line`` message (``service.cli`` maps ``NluDataError``).
``validate`` exits 1 when a file reads only after repairs or with warnings.
This module imports no torch, Lightning or MLflow: ``data stats`` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from nlu import dataset
from service.commands import number
from nlu.formats import (FORMATS, ReadReport, detect_format, output_format, read_report,
                         write_utterances)
from nlu.schema import LabelMapping, bundled_mappings
from nlu.utterance import Utterance


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("files", nargs="+", metavar="FILE",
                        help="data files or folders (xsid-pair and jointbert are folders)")
    common.add_argument("--format", choices=sorted(FORMATS),
                        help="input format (default: detected from each name)")
    common.add_argument("--language", help="language code for every input utterance "
                                           "(default: from the file or its name)")
    common.add_argument("--strict", action="store_true",
                        help="fail on the first annotation problem instead of repairing it")
    mapping = argparse.ArgumentParser(add_help=False)
    mapping.add_argument("--map-labels", metavar="NAME_OR_YAML",
                         help="apply a label mapping first; bundled: "
                              + ", ".join(bundled_mappings()))
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--out", required=True, help="output file (or folder for xsid-pair, "
                                                     "jointbert)")
    output.add_argument("--to", choices=sorted(FORMATS),
                        help="output format (default: from the --out name; .gz compresses)")
    output.add_argument("--dedupe", action="store_true",
                        help="drop repeated annotations (after --map-labels, before sampling)")

    stats = actions.add_parser("stats", parents=[common, mapping],
                               help="counts of utterances, tokens, languages, intents, slots")
    stats.add_argument("--top", type=number(int, low=1), default=None, metavar="N",
                       help="show only the N most frequent labels per table")
    validate = actions.add_parser("validate", parents=[common],
                                  help="read every file and list each repair and warning")
    validate.add_argument("--show", type=number(int, low=0), default=20, metavar="N",
                          help="messages to print per file and kind (default 20; 0 for none)")
    actions.add_parser("convert", parents=[common, mapping, output],
                       help="read files, optionally map labels, write one output")
    sample = actions.add_parser("sample", parents=[common, mapping, output],
                                help="seeded few-shot sample, stratified by intent")
    size = sample.add_mutually_exclusive_group(required=True)
    size.add_argument("--per-intent", type=number(int, low=1), metavar="K", help="K utterances per intent")
    size.add_argument("--fraction", type=number(float, low=0, high=1, above_low=True), metavar="P",
                      help="fraction P of the utterances (0 < P <= 1), at least 1 per intent")
    sample.add_argument("--seed", type=number(int, low=0, high=2 ** 63 - 1), required=True)


def run(args: argparse.Namespace) -> int:
    reports = [(path, args.format or detect_format(path),
                read_report(path, args.format, language=args.language,
                            mode="strict" if args.strict else "repair"))
               for path in args.files]
    if args.action == "validate":
        return _validate(reports, args.show)
    utterances = dataset.merge(*(report.utterances for _, _, report in reports))
    if args.map_labels:
        utterances = LabelMapping.load(args.map_labels).apply(utterances)
    if args.action == "stats":
        _print_files(reports)
        print()
        print(dataset.stats(utterances).render(top=args.top))
        return 0
    _report_changes(reports, args.verbose)
    if args.dedupe:
        utterances = dataset.deduplicate(utterances)
    if args.action == "sample":
        utterances = dataset.sample(utterances, per_intent=args.per_intent,
                                    fraction=args.fraction, seed=args.seed)
    _write(utterances, args.out, args.to)
    return 0


def _print_files(reports: list[tuple[str, str, ReadReport]]) -> None:
    width = max(len("file"), *(len(path) for path, _, _ in reports))
    print(f"{'file':<{width}}  {'format':<10}  {'utterances':>10}  {'repairs':>7}  {'warnings':>8}")
    for path, fmt, report in reports:
        print(f"{path:<{width}}  {fmt:<10}  {len(report.utterances):>10,}  "
              f"{len(report.repairs):>7,}  {len(report.warnings):>8,}")


def _report_changes(reports: list[tuple[str, str, ReadReport]], verbose: bool) -> None:
    """What reading changed (repairs; warnings such as a span widened to whole tokens), counted
    per file on stderr, listed with ``--verbose``: the output is not the input as written."""
    for path, _, report in reports:
        if not report.repairs and not report.warnings:
            continue
        hint = "" if verbose else " (--verbose or `data validate` lists them)"
        print(f"{path}: {len(report.repairs):,} repairs, {len(report.warnings):,} warnings"
              f"{hint}", file=sys.stderr)
        if verbose:
            for kind, messages in (("repair", report.repairs), ("warning", report.warnings)):
                for message in messages:
                    print(f"{kind}: {message}", file=sys.stderr)


def _validate(reports: list[tuple[str, str, ReadReport]], show: int) -> int:
    _print_files(reports)
    for _, _, report in reports:
        for kind, messages in (("repair", report.repairs), ("warning", report.warnings)):
            for message in messages[:show]:
                print(f"{kind}: {message}")
            if len(messages) > show:
                print(f"... {len(messages) - show} more {kind}s")
    clean = all(not report.repairs and not report.warnings for _, _, report in reports)
    print("OK: every file is clean" if clean else
          "NOT CLEAN: repairs or warnings above (--strict turns them into errors)")
    return 0 if clean else 1


def _write(utterances: list[Utterance], out: str, fmt: str | None) -> None:
    fmt = fmt or output_format(out)
    write_utterances(utterances, out, fmt)
    print(f"wrote {len(utterances):,} utterances to {out} ({fmt})")
