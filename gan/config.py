"""The GAN's configuration, ``GanConfig``: model sizes, the training schedule, the reward.

Validated on construction; ``from_dict`` rejects unknown keys. The lowest room of ``gan``'s
training side: config -> models -> module -> training -> augment (nothing here imports up).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gan.rewards import reward
from nlu.config import strict_from_dict
from nlu.devices import DeviceConfig

# Where a run is tracked is the job's ``tracking:`` section (``nlu.jobs.TrackingConfig``), not
# the GAN's: generator folders saved before the move still carry these keys, ignored on load.
TRACKING_FIELDS = ("experiment", "run_name", "registered_name", "alias")
RETIRED_FIELDS = (*TRACKING_FIELDS, "progress_bar")
BASELINES = ("ema", "batch", "none")


@dataclass
class GanConfig:
    # model sizes
    embedding_dim: int = 64  # set to the pretrained vectors' size when embeddings are given
    tag_dim: int = 16
    condition_dim: int = 16
    hidden_dim: int = 128
    d_hidden_dim: int = 64
    dropout: float = 0.3  # with mle_epochs and g_lr: chosen on a 250/50 split of xSID de dev
    max_length: int = 30  # longer training utterances are cut; samples have at most this many tokens
    embeddings: str | None = None  # None | "<file>.vec" | "nlu:<TrainedNlu dir>" | "nlu" (nlu_model)
    freeze_embeddings: bool = False
    # G writes a word only with tags it was seen with (gan/vocab.py): consistent annotations
    # and a faster head. False lets any word take any tag: slightly more diverse sets; the
    # studies' untied GANs did better on intents cut to 20 examples, within the noise (RESULTS)
    tie_words_to_tags: bool = True
    # Write carrier phrases with slot placeholders and fill the slots with values seen in the
    # real data (gan/lexicon.py): new value x carrier combinations, never invented values.
    delexicalised: bool = False
    # schedule
    batch_size: int = 64
    mle_epochs: int = 20  # more memorises a few hundred utterances (novelty falls)
    d_pretrain_steps: int = 100
    adversarial_steps: int = 100  # 0 = the MLE-only baseline
    g_steps: int = 1
    d_steps: int = 1
    reward: str = "rollout"  # a name in gan.rewards.REWARDS
    rollout_n: int = 8
    rollout_update_rate: float = 0.8  # rollout copy <- rate * copy + (1 - rate) * G
    g_lr: float = 5e-3
    adversarial_lr: float = 1e-4
    d_lr: float = 1e-3
    baseline: str = "ema"
    baseline_decay: float = 0.9
    clip: float = 5.0
    d_mislabeled_negatives: bool = True
    seed: int = 0
    steps_per_checkpoint: int = 50
    # torch threads while training (0 = leave torch's setting). One per job, as the studies
    # and the service run jobs side by side: alone on an idle machine a second thread speeds
    # a training up a little (benchmarks/gan_speed.py), on a shared, busy one it can cost a lot.
    threads: int = 1
    # where it trains: one process only (see __post_init__)
    devices: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    # reporting
    eval_samples: int = 500  # generated (top-p 0.9) after training for the quality metrics
    log_every_n_steps: int = 10

    def __post_init__(self) -> None:
        self.devices = DeviceConfig.from_dict(self.devices)  # a mapping from YAML or JSON
        if not self.devices.single_process:
            # G, D and the rollout copy are updated by hand, in turn, from G's own samples:
            # nothing would average the replicas' updates, so each process would train its own GAN.
            raise ValueError(f"devices: the GAN trains in one process (strategy auto, devices 1, "
                             f"num_nodes 1), got {self.devices}")
        positive = ("embedding_dim", "tag_dim", "condition_dim", "hidden_dim", "d_hidden_dim",
                    "max_length", "batch_size", "rollout_n", "g_steps", "steps_per_checkpoint",
                    "log_every_n_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("mle_epochs", "d_pretrain_steps", "adversarial_steps", "d_steps",
                     "eval_samples", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("g_lr", "adversarial_lr", "d_lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        for name in ("dropout", "rollout_update_rate", "baseline_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.delexicalised and not self.tie_words_to_tags:
            # untied, G could write a placeholder outside a slot, where no value can go
            raise ValueError("delexicalised: needs tie_words_to_tags (a placeholder goes only "
                             "with its slot's tags)")
        reward(self.reward)  # raises, naming the registered rewards
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline: {self.baseline!r} is not one of {', '.join(BASELINES)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GanConfig":
        return strict_from_dict(cls, data)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> "GanConfig":
        """The config a generator folder was saved with (older folders: tracking keys too)."""
        return cls.from_dict({key: value for key, value in data.items()
                              if key not in RETIRED_FIELDS})
