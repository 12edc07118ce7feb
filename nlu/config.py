"""Configs are dataclasses; a dict from YAML becomes one through ``strict_from_dict``."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")


def strict_from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    """``cls(**values)``, but a key that is not a field is an error naming it (a typo in a
    YAML file must not be silently ignored)."""
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a {cls.__name__} field")
    return cls(**values)
