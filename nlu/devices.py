"""Where a model trains: ``DeviceConfig`` (the Lightning Trainer's device options).

Both trainers (``nlu.training.fit`` and ``gan.training.train_gan``) take their Trainer's
``accelerator``, ``devices``, ``strategy``, ``num_nodes`` and ``precision`` from here. The
defaults pick a GPU when there is one, else the CPU, and keep one process, so results do not
change with the machine's GPU count. Configs carry it as a ``devices`` mapping (YAML) and the
CLI overrides it with ``--accelerator --devices --strategy --num-nodes --precision``.

In a multi-process job (``strategy: ddp``) every process runs the whole command; only the
primary one (``is_primary_process``) writes checkpoints, outputs and MLflow runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from nlu.config import strict_from_dict
from nlu.errors import NluDataError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


@dataclass(frozen=True)
class DeviceConfig:
    accelerator: str = "auto"
    devices: int | str = 1  # a count, or "auto" (every device the accelerator has)
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator: {self.accelerator!r} is not one of "
                             f"{', '.join(ACCELERATORS)}")
        if self.devices != "auto" and not (isinstance(self.devices, int) and self.devices >= 1):
            raise ValueError(f"devices: must be a count >= 1 or 'auto', got {self.devices!r}")
        if not isinstance(self.strategy, str) or not self.strategy:
            raise ValueError(f"strategy: must be a Lightning strategy name, got {self.strategy!r}")
        if not isinstance(self.num_nodes, int) or self.num_nodes < 1:
            raise ValueError(f"num_nodes: must be >= 1, got {self.num_nodes!r}")
        if str(self.precision) not in PRECISIONS:
            raise ValueError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @property
    def single_process(self) -> bool:
        return (self.strategy in ("auto", "single_device") and self.devices == 1
                and self.num_nodes == 1)

    def trainer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``pl.Trainer`` this config sets."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: "DeviceConfig | dict[str, Any] | None") -> "DeviceConfig":
        if isinstance(values, DeviceConfig):
            return values
        return strict_from_dict(cls, values or {})


def is_primary_process() -> bool:
    """False in the processes of a multi-process job other than global rank 0: torchrun sets
    ``RANK``; Lightning's own launcher sets ``NODE_RANK`` and ``LOCAL_RANK``."""
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return os.environ.get("NODE_RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def _device_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'auto', got {text!r}") from None


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLI flags that override a config's ``devices`` mapping."""
    group = parser.add_argument_group("devices (override the config's devices mapping)")
    group.add_argument("--accelerator", choices=ACCELERATORS,
                       help="auto (a GPU when present, else the CPU), cpu, gpu, ...")
    group.add_argument("--devices", type=_device_count, help="devices per node (default 1)")
    group.add_argument("--strategy", help="Lightning strategy, e.g. ddp (default auto)")
    group.add_argument("--num-nodes", type=int, help="machines of a multi-node job (default 1)")
    group.add_argument("--precision", choices=PRECISIONS, help="default 32-true")


def device_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The device flags given on the command line, as ``DeviceConfig`` fields."""
    return {name: getattr(args, name) for name in
            ("accelerator", "devices", "strategy", "num_nodes", "precision")
            if getattr(args, name, None) is not None}


def with_devices(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A model config mapping whose ``devices`` mapping has ``overrides`` applied
    (validated: a bad value raises ``NluDataError`` here, before anything runs, and the CLI
    exits with code 2)."""
    if not overrides:
        return settings
    try:
        devices = dataclasses.replace(DeviceConfig.from_dict(settings.get("devices")), **overrides)
    except ValueError as error:
        raise NluDataError(str(error), field="devices") from None
    return {**settings, "devices": devices.trainer_kwargs()}
