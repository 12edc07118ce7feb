"""The whole GAN schedule as one LightningModule with manual optimisation (G and D optimisers).

Training runs three phases back to back, counted in steps by ``steps_done`` (a buffer, so it
is saved in every checkpoint and a resumed job continues in the right phase):

1. ``mle``          — teacher-forced maximum likelihood on real utterances;
2. ``discriminator`` — D learns real vs G's samples (and vs real utterances given a wrong
   intent, so that labels matter to it);
3. ``adversarial``  — per batch, ``g_steps`` policy-gradient updates of G with the configured
   reward, a baseline and gradient clipping, then ``d_steps`` updates of D.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Iterator

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
import torch
from torch import nn
from torch.nn import functional as F

from gan.discriminator import Discriminator
from gan.generator import Generator
from gan.rewards import compute_rewards
from gan.sampling import UNRESTRICTED

if TYPE_CHECKING:
    from gan.config import GanConfig

PHASES = ("mle", "discriminator", "adversarial", "done")


@contextlib.contextmanager
def without_dropout(*modules: nn.Module) -> Iterator[None]:
    """Run the modules in eval mode (no dropout), then restore each module's mode."""
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Sample and score: no dropout, no gradients."""
    with without_dropout(*modules), torch.no_grad():
        yield


def _masked_bce(logits: torch.Tensor, target: float, mask: torch.Tensor) -> torch.Tensor:
    losses = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target),
                                                reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


class GanModule(pl.LightningModule):
    def __init__(self, generator: Generator, discriminator: Discriminator, config: "GanConfig",
                 mle_steps: int):
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        # SeqGAN's rollout policy: a copy of G that follows it with a delay.
        self.rollout_generator = copy.deepcopy(generator).requires_grad_(False)
        self.config = config
        self.phase_ends = (mle_steps, mle_steps + config.d_pretrain_steps,
                           mle_steps + config.d_pretrain_steps + config.adversarial_steps)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("baseline", torch.zeros(()))

    @property
    def total_steps(self) -> int:
        return self.phase_ends[-1]

    def phase(self, step: int | None = None) -> str:
        step = int(self.steps_done) if step is None else step
        return next((name for name, end in zip(PHASES, self.phase_ends) if step < end), "done")

    def phase_description(self, step: int | None = None) -> str:
        """Where training is, in the units of its config: "MLE epoch 3/20", "D step
        40/100", "adversarial step 7/100" (the progress bar's label)."""
        step = int(self.steps_done) if step is None else step
        phase = self.phase(step)
        if phase == "done":
            return "done"
        index = PHASES.index(phase)
        start, end = ((0,) + self.phase_ends)[index], self.phase_ends[index]
        if phase == "mle" and self.config.mle_epochs:
            per_epoch = max(1, end // self.config.mle_epochs)
            return f"MLE epoch {min(step // per_epoch + 1, self.config.mle_epochs)}/" \
                   f"{self.config.mle_epochs}"
        label = "D step" if phase == "discriminator" else "adversarial step"
        return f"{label} {step - start + 1}/{end - start}"

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Lightning's bar says "Epoch N" (an epoch here is steps_per_checkpoint steps): say
        # the phase instead, on either of Lightning's bars (rich when installed, else tqdm).
        bar = self.trainer.progress_bar_callback
        if bar is None or not bar.is_enabled:
            return
        if isinstance(bar, RichProgressBar) and bar.train_progress_bar_id is not None:
            bar.progress.update(bar.train_progress_bar_id, description=self.phase_description())
        elif isinstance(bar, TQDMProgressBar):
            bar.train_progress_bar.set_description(self.phase_description(), refresh=False)

    def configure_optimizers(self):
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        # Not fused: a fused step does not bump the parameters' version counters, so the
        # models' fast tables (gan.lstm.WeightCache) would not see the update.
        return [torch.optim.Adam(trainable, lr=self.config.g_lr),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.config.d_lr)]

    def training_step(self, batch, batch_idx):
        phase = self.phase()
        if phase == "done":  # the tail of the last epoch
            return None
        tokens, tags, intents, languages = batch
        length = int((tags != self.generator.pad_tag).sum(dim=1).max())
        tokens, tags = tokens[:, :length], tags[:, :length]
        if phase == "mle":
            self._mle_step(tokens, tags, intents, languages)
        elif phase == "discriminator":
            self._discriminator_step(tokens, tags, intents, languages)
        else:
            self._adversarial_step(tokens, tags, intents, languages)
        self.steps_done += 1
        self.log("phase", float(PHASES.index(phase)), on_step=True)
        return None

    # --- phases ----------------------------------------------------------------------------
    def _generator_update(self, loss: torch.Tensor, learning_rate: float) -> None:
        optimizer = self.optimizers()[0]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.config.clip,
                            gradient_clip_algorithm="norm")
        optimizer.step()

    def _mle_step(self, tokens, tags, intents, languages) -> None:
        log_probs = self.generator.step_log_probs(tokens, tags, intents, languages)
        steps = (tags != self.generator.pad_tag).sum()
        nll = -log_probs.sum() / steps
        self._generator_update(nll, self.config.g_lr)
        self.log("mle/nll", nll.detach(), on_step=True, prog_bar=True)

    def _sample_like(self, intents, languages) -> tuple[torch.Tensor, torch.Tensor]:
        with evaluating(self.generator):
            return self.generator.sample(intents, languages, UNRESTRICTED)

    def _discriminator_step(self, tokens, tags, intents, languages) -> None:
        discriminator, pad = self.discriminator, self.generator.pad_tag
        fake_tokens, fake_tags = self._sample_like(intents, languages)
        real_logits = discriminator.prefix_logits(tokens, tags, intents, languages)
        fake_logits = discriminator.prefix_logits(fake_tokens, fake_tags, intents, languages)
        loss_real = _masked_bce(real_logits, 1.0, tags != pad)
        loss_fake = _masked_bce(fake_logits, 0.0, fake_tags != pad)
        negatives = [loss_fake]
        if self.config.d_mislabeled_negatives:
            # Real words and slots under another utterance's intent: only the whole sequence
            # is labelled fake (its first words may well fit the other intent too).
            wrong_intents = intents.roll(1)
            differs = (wrong_intents != intents).float()
            if differs.any():
                wrong_logits = discriminator.sequence_logits(tokens, tags, wrong_intents, languages)
                negatives.append(_masked_bce(wrong_logits, 0.0, differs))
        loss = loss_real + sum(negatives) / len(negatives)
        optimizer = self.optimizers()[1]
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.config.clip,
                            gradient_clip_algorithm="norm")
        optimizer.step()
        with torch.no_grad():
            real_score = torch.sigmoid(discriminator.sequence_logits(
                tokens, tags, intents, languages)).mean()
            fake_score = torch.sigmoid(discriminator.sequence_logits(
                fake_tokens, fake_tags, intents, languages)).mean()
        self.log_dict({"d/loss": loss.detach(), "d/real_score": real_score,
                       "d/fake_score": fake_score}, on_step=True, prog_bar=True)

    def _adversarial_step(self, tokens, tags, intents, languages) -> None:
        config, pad = self.config, self.generator.pad_tag
        for _ in range(config.g_steps):
            fake_tokens, fake_tags = self._sample_like(intents, languages)
            with evaluating(self.rollout_generator, self.discriminator):
                rewards = compute_rewards(config.reward, self.rollout_generator,
                                          self.discriminator, fake_tokens, fake_tags, intents,
                                          languages, config.rollout_n)
            mask = (fake_tags != pad).to(rewards.dtype)
            mean_reward = (rewards * mask).sum() / mask.sum()
            if config.baseline == "ema":
                advantages = rewards - self.baseline
            elif config.baseline == "batch":  # the mean reward of each step position
                advantages = rewards - (rewards * mask).sum(0) / mask.sum(0).clamp(min=1)
            else:
                advantages = rewards
            # On-policy: the log-probabilities of the policy that sampled, i.e. without
            # dropout (with it, the gradient is that of a randomly thinned policy)
            with without_dropout(self.generator):
                log_probs = self.generator.step_log_probs(fake_tokens, fake_tags, intents,
                                                          languages)
            loss = -(log_probs * advantages * mask).sum() / mask.sum()
            self._generator_update(loss, config.adversarial_lr)
            self.baseline.mul_(config.baseline_decay).add_((1 - config.baseline_decay) * mean_reward)
            self._follow_generator()
            self.log_dict({"adv/g_loss": loss.detach(), "adv/reward": mean_reward,
                           "adv/baseline": self.baseline.clone()}, on_step=True, prog_bar=True)
        for _ in range(config.d_steps):
            self._discriminator_step(tokens, tags, intents, languages)

    @torch.no_grad()
    def _follow_generator(self) -> None:
        rate = self.config.rollout_update_rate
        for rollout_param, param in zip(self.rollout_generator.parameters(),
                                        self.generator.parameters()):
            rollout_param.mul_(rate).add_((1 - rate) * param)
