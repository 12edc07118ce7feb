"""A source-aware generator at full source scale: training time and generation speed.

    .venv/bin/python benchmarks/source_aware_gan.py [--mle-epochs 5] [--threads 1] [--mode both]

Data: the whole xSID English train (43,605 utterances, labels mapped to the 0.7 schema) plus
the 300 German xSID ``valid`` utterances, from ../shared/data beside the checkout. G is the
MLE-only generator (``adversarial_steps: 0``, the verdict profile's choice; the adversarial
phase costs the same whatever the data size) with the default sizes (128 units), trained
delexicalised and lexicalised. Prints per mode:
  (a) wall and CPU time of ``train_gan`` (CPU time / threads bounds what an idle machine
      needs when the machine is shared);
  (b) valid annotated German utterances/s from ``Augmenter.generate`` at batch 1,024
      (top-p 0.9, no gate; every yielded ``Utterance`` is validated on construction; the
      delexicalised generator's include filling the slots from the lexicon), per wall and
      per CPU second (target >= 5,000/s).

``--tiny``: 80 English and 30 German utterances of the bundled sample (experiments/data),
tiny models, one epoch, in seconds: it checks that the benchmark runs
(tests/test_benchmarks.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gan.config import GanConfig
from gan.sampling import SamplingConfig
from gan.training import train_gan
from nlu.formats import read_utterances
from nlu.schema import LabelMapping

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xsid"
BUNDLED = Path(__file__).resolve().parents[1] / "experiments" / "data" / "xsid"
TINY_GAN = dict(embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=24, d_hidden_dim=16,
                max_length=12, batch_size=16, d_pretrain_steps=2, steps_per_checkpoint=5)


def read_data(tiny: bool):
    """(English, German) utterances: the whole xSID English train (mapped to the 0.7 schema)
    and the German valid set, or with ``tiny`` a few of the bundled sample's."""
    if tiny:
        return (read_utterances(BUNDLED / "en-train-sample.jsonl")[:80],
                read_utterances(BUNDLED / "xSID-0.7" / "de.valid.conll.gz")[:30])
    english = LabelMapping.load("xsid-train-0.1-to-0.7").apply(
        read_utterances(DATA / "en-train-v0.1", "xsid-pair", language="en"))
    return english, read_utterances(DATA / "xSID-0.7" / "de.valid.conll", "conll")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mle-epochs", type=int, default=5,
                        help="passes over the 43.9k utterances (default 5: ~3,400 steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--count", type=int, default=20_000, help="utterances generated in (b)")
    parser.add_argument("--mode", choices=("delexicalised", "lexicalised", "both"), default="both")
    parser.add_argument("--tiny", action="store_true",
                        help="a few bundled utterances, tiny models, one epoch: checks that it runs")
    args = parser.parse_args(argv)
    if args.tiny:
        args.mle_epochs, args.count = 1, 64
    batch_size = 32 if args.tiny else 1024

    english, german = read_data(args.tiny)
    train = english + german
    print(f"data: {len(english)} en + {len(german)} de utterances; torch threads {args.threads}")
    modes = {"delexicalised": (True,), "lexicalised": (False,), "both": (True, False)}
    for delexicalised in modes[args.mode]:
        config = GanConfig(**{"mle_epochs": args.mle_epochs, "adversarial_steps": 0,
                              "d_pretrain_steps": 50, "eval_samples": 0,
                              "threads": args.threads, "delexicalised": delexicalised,
                              "steps_per_checkpoint": 200} | (TINY_GAN if args.tiny else {}))
        with tempfile.TemporaryDirectory() as scratch:
            wall, cpu = time.perf_counter(), time.process_time()
            augmenter = train_gan(train, config, run_dir=scratch, progress_bar=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        mode = "delexicalised" if delexicalised else "lexicalised"
        steps = args.mle_epochs * -(-len(train) // config.batch_size)
        print(f"{mode}: (a) train_gan {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU "
              f"({steps} MLE steps at batch {config.batch_size}, "
              f"{len(augmenter.vocab.tokens)} tokens)")
        torch.set_num_threads(args.threads)
        list(augmenter.generate(batch_size, sampling=SamplingConfig(), seed=0, language="de",
                                batch_size=batch_size))  # warm-up: the sampling tables
        started, cpu = time.perf_counter(), time.process_time()
        made = list(augmenter.generate(args.count, sampling=SamplingConfig(), seed=1,
                                       language="de", batch_size=batch_size))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert all(u.language == "de" for u in made)
        # per CPU second too: on a shared machine the wall rate measures the other jobs
        print(f"{mode}: (b) {len(made) / seconds:,.0f} valid de utterances/s at batch {batch_size:,} "
              f"({len(made)} in {seconds:.1f} s wall; {len(made) / cpu:,.0f} per CPU second)")


if __name__ == "__main__":
    main()
