"""The ``nlu-bootstrap`` command: a thin shell over the library.

Each subcommand lives in its own module under ``service/commands/`` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Modules are imported lazily, only for
the subcommand that runs, so ``data stats`` never pays for importing torch or Lightning.

Every bad argument is a one-line message and exit code 2, found before any data or model
is loaded; a stop by SIGTERM or Ctrl-C exits 143 or 130 (``service.commands.Interrupted``).
Lightning's and MLflow's chatter stays out of the output unless ``--verbose``
(``service.quiet``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nlu.errors import NluDataError
from service.commands import Interrupted, UsageError
from service.quiet import quiet_libraries

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
    "models": ("models", "list the registered generators and NLU models with their aliases"),
}

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nlu-bootstrap")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help texts that show each option's default (options without one stay as written)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        nothing = default is None or default is False or default == [] or (
            default == argparse.SUPPRESS)
        if nothing or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _leaf_parsers(parser: argparse.ArgumentParser):
    """The parsers that take a command's options (``data convert``, ``gan train``, ``train``)."""
    actions = [action for action in parser._actions
               if isinstance(action, argparse._SubParsersAction)]
    if not actions:
        yield parser
    for action in actions:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaf_parsers(child)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with full arguments for ``command`` only (every other subcommand is listed
    with its help line but not imported)."""
    parser = argparse.ArgumentParser(prog="nlu-bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if name == command:
            module = importlib.import_module(f"service.commands.{module_name}")
            subparser = subparsers.add_parser(name, help=help_text, description=help_text,
                                              formatter_class=_HelpFormatter)
            module.add_parser(subparser)
            for leaf in _leaf_parsers(subparser):
                leaf.formatter_class = _HelpFormatter
                if not any("--verbose" in action.option_strings for action in leaf._actions):
                    leaf.add_argument("--verbose", action="store_true",
                                      help="let Lightning's and MLflow's own messages through")
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    module = importlib.import_module(f"service.commands.{COMMANDS[args.command][0]}")
    try:
        return module.run(args)
    except (NluDataError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return stop.exit_code
    except BrokenPipeError:
        # The reader went away (`nlu-bootstrap data stats ... | head`): stop quietly, and keep
        # Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
