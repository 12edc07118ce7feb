"""The sampling engine of an older commit and of this checkout, interleaved in one process.

    .venv/bin/python benchmarks/side_by_side.py --base COMMIT [--rounds 15] [--calls 150]

This machine's speed drifts by +-25 % from one run to the next, more than most single
changes gain, so runs of two checkouts one after the other do not compare them. Here the
``gan`` package of ``COMMIT`` is imported as a second package (``gan_base``, from a
temporary ``git worktree``) next to this checkout's ``gan``; both get the same weights (one
generator and discriminator trained first, as in ``benchmarks/gan_speed.py`` but briefly) and
are timed alternately, in random order, in CPU time on one thread. Prints the median of each
and their ratio for: the batched rollout reward (64 utterances, N = 8), top-p sampling of
116 and 464 rows, and ``Augmenter.generate(100)`` with the de-duplicating gate (a service
call's work).

``--tiny``: without ``--base``, this checkout against a copy of its own ``gan`` (no git
needed), tiny models on 40 bundled utterances, two rounds, in seconds: it checks that the
benchmark runs (tests/test_benchmarks.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))


def import_base(commit: str | None, scratch: Path):
    """``gan`` of ``commit`` (None: of this checkout) as the package ``gan_base`` (its ``nlu``
    imports stay this checkout's: the engine is what is compared)."""
    package = scratch / "packages" / "gan_base"
    if commit is None:
        shutil.copytree(REPOSITORY / "gan", package, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        worktree = scratch / "worktree"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), commit],
                       cwd=REPOSITORY, check=True, capture_output=True)
        try:
            shutil.copytree(worktree / "gan", package)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)],
                           cwd=REPOSITORY, check=True, capture_output=True)
    for source in package.glob("*.py"):
        source.write_text(re.sub(r"\b(from|import) gan\b", r"\1 gan_base", source.read_text()))
    sys.path.insert(0, str(package.parent))
    return {name: importlib.import_module(f"gan_base.{name}")
            for name in ("augment", "gate", "generator", "discriminator", "rewards", "sampling")}


def same_weights(module: torch.nn.Module, cls: type) -> torch.nn.Module:
    twin = copy.deepcopy(module)
    twin.__class__ = cls
    return twin.eval()


def interleaved(base, new, rounds: int) -> tuple[float, float]:
    """Median CPU seconds of ``base(i)`` and ``new(i)``, alternated in random order."""
    base(0), new(0)
    times: dict = {base: [], new: []}
    for index in range(rounds):
        for function in random.sample([base, new], 2):
            start = time.process_time()
            function(index)
            times[function].append(time.process_time() - start)
    return statistics.median(times[base]), statistics.median(times[new])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the older commit (required without --tiny)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--tiny", action="store_true",
                        help="tiny models, two rounds; without --base, against itself")
    args = parser.parse_args(argv)
    if args.base is None and not args.tiny:
        parser.error("--base is required (without --tiny)")
    torch.set_num_threads(1)

    from gan import gate, rewards, sampling
    from gan.config import GanConfig
    from gan.training import train_gan
    from gan_speed import BUNDLED_TRAIN, TINY, sample_train

    if args.tiny:
        args.rounds = args.calls = 2
    train = (sample_train(TINY.utterances, path=BUNDLED_TRAIN) if args.tiny
             else sample_train(1000))
    row_counts = (16,) if args.tiny else (116, 464)
    with tempfile.TemporaryDirectory() as scratch:
        old = import_base(args.base, Path(scratch))
        config = GanConfig(**{"adversarial_steps": 10, "eval_samples": 0}
                           | (TINY.gan | {"eval_samples": 0} if args.tiny else {}))
        new_augmenter = train_gan(train, config, run_dir=Path(scratch) / "run",
                                  progress_bar=False)
        old_augmenter = old["augment"].Augmenter(
            new_augmenter.config, new_augmenter.vocab,
            same_weights(new_augmenter.generator, old["generator"].Generator),
            same_weights(new_augmenter.discriminator, old["discriminator"].Discriminator),
            new_augmenter.info)
        new_augmenter.generator.eval(), new_augmenter.discriminator.eval()

        def conditions(count: int):
            encoded = new_augmenter.vocab.encode(train[:count], config.max_length)
            return torch.from_numpy(encoded["intents"]), torch.from_numpy(encoded["languages"])

        intents, languages = conditions(64)
        with torch.no_grad():
            tokens, tags = new_augmenter.generator.sample(intents, languages,
                                                          sampling.UNRESTRICTED)
        print(f"base {args.base or 'this checkout (a copy)'} vs this checkout; one thread, "
              f"CPU time, medians ({args.rounds} rounds; {args.calls} calls for generate)",
              flush=True)
        for name, (old_one, new_one) in {
            "rollout reward (64 x N=8)": [
                (lambda _, m=m, a=a: m.rollout_rewards(a.generator, a.discriminator, tokens,
                                                       tags, intents, languages, 8))
                for m, a in ((old["rewards"], old_augmenter), (rewards, new_augmenter))],
            **{f"top-p sampling, {rows} rows": [
                (lambda i, s=s, a=a, c=conditions(rows): a.generator.sample(
                    *c, s.SamplingConfig(method="top-p", top_p=0.9),
                    generator=torch.Generator().manual_seed(i)))
                for s, a in ((old["sampling"], old_augmenter), (sampling, new_augmenter))]
               for rows in row_counts},
        }.items():
            with torch.no_grad():
                old_time, new_time = interleaved(old_one, new_one, args.rounds)
            print(f"{name}: base {old_time * 1000:.1f} ms, this checkout "
                  f"{new_time * 1000:.1f} ms = {new_time / old_time:.2f}x", flush=True)

        old_generate, new_generate = [
            (lambda i, s=s, g=g, a=a: sum(1 for _ in a.generate(
                100, sampling=s.SamplingConfig(method="top-p", top_p=0.9), seed=i,
                gate=g.GateConfig(drop_train_copies=False), batch_size=100)))
            for s, g, a in ((old["sampling"], old["gate"], old_augmenter),
                            (sampling, gate, new_augmenter))]
        old_time, new_time = interleaved(old_generate, new_generate, args.calls)
        print(f"generate(100), top-p 0.9, de-duplicating gate: base {old_time * 1000:.1f} ms, "
              f"this checkout {new_time * 1000:.1f} ms = {new_time / old_time:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
