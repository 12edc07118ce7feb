"""The CLI's commands, one module each; shared argument types here."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def number(kind: type = int, *, low: float, high: float | None = None,
           above_low: bool = False) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` in ``[low, high]`` (``(low, ...`` with
    ``above_low``); anything else is a usage error naming the flag, exit code 2."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        inside = (value > low if above_low else value >= low) and (high is None or value <= high)
        if not math.isfinite(value) or not inside:
            bounds = f"{'>' if above_low else '>='} {low:g}" + (
                f" and <= {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}")
        return value

    return parse
