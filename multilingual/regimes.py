"""The four ways to use a source language's data to bootstrap a target language.

=============  ==========================================================================
regime         labelled training data
=============  ==========================================================================
monolingual    target only
mixed          source + target together, one model
finetune       source first (pretrain), then target (fine-tune; optionally heads only)
zeroshot       source only; the model is then evaluated on the target language
=============  ==========================================================================

By default every regime trains its SentencePiece vocabulary on the text of all labelled
training data the job holds (source + target), so that monolingual, mixed and finetune differ
only in the labelled data each model learns from; ``zeroshot`` is the exception: it sees no
target text at all. ``vocabulary_text`` overrides this, e.g. one vocabulary over the source
and several target languages for a benchmark (then zero-shot models have seen unlabelled
target text, as a multilingual pretrained encoder has). The label inventory is the union of
the labels of the training data, so a model can predict every intent and slot type it saw.

Early stopping: a training stage watches only the ``dev`` utterances in the languages it
trains on (English dev says little about when a German fine-tuning stage should stop); a
stage with no such dev data trains for ``max_epochs``.

Each regime writes under ``run_dir`` (checkpoints, vocabulary) and resumes from there; the
finetune regime saves its pretrained model in ``run_dir/pretrained`` so a resumed job does not
pretrain again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from nlu.utterance import Utterance

if TYPE_CHECKING:  # torch and Lightning load only when a regime actually trains
    from nlu.model import JointModelConfig
    from nlu.training import TrainedNlu

REGIME_NAMES = ("monolingual", "mixed", "finetune", "zeroshot")


def monolingual(source: Sequence[Utterance], target: Sequence[Utterance],
                config: "JointModelConfig", *, dev: Sequence[Utterance] | None = None,
                run_dir: Path | str, tracking_uri: str | None = None, resume: bool = False,
                vocabulary_text: Sequence[Utterance] | None = None) -> "TrainedNlu":
    """Train on the target data only (source text still shapes the shared vocabulary)."""
    from nlu.training import fit

    _require(target, "target", "monolingual")
    everything = [*source, *target]
    return fit(target, _dev_for(target, dev), config,
               vocabulary_text=vocabulary_text or everything,
               label_inventory=everything, run_dir=run_dir, tracking_uri=tracking_uri,
               resume=resume)


def mixed(source: Sequence[Utterance], target: Sequence[Utterance],
          config: "JointModelConfig", *, dev: Sequence[Utterance] | None = None,
          run_dir: Path | str, tracking_uri: str | None = None, resume: bool = False,
          vocabulary_text: Sequence[Utterance] | None = None) -> "TrainedNlu":
    """Train one model on source and target data together."""
    from nlu.training import fit

    _require(target, "target", "mixed")
    everything = [*source, *target]
    return fit(everything, _dev_for(everything, dev), config, vocabulary_text=vocabulary_text,
               run_dir=run_dir, tracking_uri=tracking_uri, resume=resume)


def finetune(source: Sequence[Utterance], target: Sequence[Utterance],
             config: "JointModelConfig", *, dev: Sequence[Utterance] | None = None,
             run_dir: Path | str, tracking_uri: str | None = None, resume: bool = False,
             vocabulary_text: Sequence[Utterance] | None = None,
             finetune_config: "JointModelConfig | None" = None,
             pretrained: "TrainedNlu | None" = None) -> "TrainedNlu":
    """Pretrain on the source data, then continue training on the target data.

    The pretraining stage always trains the whole network; the fine-tuning stage uses
    ``finetune_config`` (default: ``config``), whose ``freeze_encoder`` decides whether only
    the intent and slot heads are trained. MLflow curves are prefixed ``pretrain``/``finetune``.
    ``pretrained`` skips the first stage (a source model shared by several target languages).
    """
    from nlu.training import TrainedNlu, fit

    _require(target, "target", "finetune")
    _require(source, "source", "finetune")
    run_dir = Path(run_dir)
    pretrained_dir = run_dir / "pretrained"
    if pretrained is None and resume and (pretrained_dir / "weights.pt").exists():
        pretrained = TrainedNlu.load(pretrained_dir)
    if pretrained is None:
        everything = [*source, *target]
        pretrained = fit(source, _dev_for(source, dev),
                         dataclasses.replace(config, freeze_encoder=False),
                         vocabulary_text=vocabulary_text or everything,
                         label_inventory=everything,
                         run_dir=run_dir / "pretrain", tracking_uri=tracking_uri,
                         resume=resume, metric_prefix="pretrain")
        pretrained.save(pretrained_dir)
    return fit(target, _dev_for(target, dev), finetune_config or config, init_from=pretrained,
               run_dir=run_dir / "finetune", tracking_uri=tracking_uri, resume=resume,
               metric_prefix="finetune")


def zeroshot(source: Sequence[Utterance], target: Sequence[Utterance],
             config: "JointModelConfig", *, dev: Sequence[Utterance] | None = None,
             run_dir: Path | str, tracking_uri: str | None = None, resume: bool = False,
             vocabulary_text: Sequence[Utterance] | None = None) -> "TrainedNlu":
    """Train on the source data only; ``target`` is deliberately ignored (its text enters the
    vocabulary only through an explicit ``vocabulary_text``). Evaluate the result on the
    target language's test set."""
    from nlu.training import fit

    _require(source, "source", "zeroshot")
    return fit(source, _dev_for(source, dev), config, vocabulary_text=vocabulary_text,
               run_dir=run_dir,
               tracking_uri=tracking_uri, resume=resume)


Regime = Callable[..., "TrainedNlu"]
REGIMES: dict[str, Regime] = {"monolingual": monolingual, "mixed": mixed,
                              "finetune": finetune, "zeroshot": zeroshot}


def train_regime(name: str, source: Sequence[Utterance], target: Sequence[Utterance],
                 config: "JointModelConfig", **options) -> "TrainedNlu":
    """Run regime ``name`` (one of ``REGIME_NAMES``); ``options`` go to its function."""
    try:
        regime = REGIMES[name]
    except KeyError:
        raise ValueError(f"unknown regime {name!r}; choose one of {', '.join(REGIME_NAMES)}"
                         ) from None
    return regime(source, target, config, **options)


def _dev_for(train: Sequence[Utterance], dev: Sequence[Utterance] | None
             ) -> list[Utterance] | None:
    """The dev utterances in the languages of ``train`` (None if there are none)."""
    languages = {utterance.language for utterance in train}
    matching = [utterance for utterance in dev or () if utterance.language in languages]
    return matching or None


def _require(utterances: Sequence[Utterance], role: str, regime: str) -> None:
    if not utterances:
        raise ValueError(f"the {regime} regime needs {role} training data, and there is none")
