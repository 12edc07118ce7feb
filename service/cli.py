"""The ``nlu-bootstrap`` command: a thin shell over the library.

Each subcommand lives in its own module under ``service/commands/`` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Modules are imported lazily, only for
the subcommand that runs, so ``data stats`` never pays for importing torch or Lightning.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nlu.errors import NluDataError

# subcommand -> (module under service.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("data", "inspect, validate, convert and sample annotated data"),
    "train": ("train", "train, evaluate and track a \"bootstrap a new language\" job"),
    "serve": ("serve", "run the gRPC augmentation and training services"),
    "experiment": ("experiment", "run a study: every arm x task x seed as an MLflow run"),
    "compare": ("compare", "build a study's comparison tables and plots from MLflow"),
    "gan": ("gan", "train a sequential GAN generator of annotated utterances"),
    "augment": ("augment", "write new annotated utterances with a trained generator"),
    "predict": ("predict", "parse text with a trained NLU model; score it on a labelled file"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with full arguments for ``command`` only (every other subcommand is listed
    with its help line but not imported)."""
    parser = argparse.ArgumentParser(prog="nlu-bootstrap", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if name == command:
            module = importlib.import_module(f"service.commands.{module_name}")
            module.add_parser(subparsers.add_parser(name, help=help_text, description=help_text))
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"service.commands.{COMMANDS[args.command][0]}")
    try:
        return module.run(args)
    except NluDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`nlu-bootstrap data stats ... | head`): stop quietly, and keep
        # Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
