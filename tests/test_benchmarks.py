"""Every benchmark runs in its tiny mode and prints its figures, so a change that breaks one
fails here and not months later. The figures of a tiny run mean nothing; only that they are
printed is checked. Each runs in this process (the imports are shared) through its ``main``.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"-?[\d,]+(?:\.\d+)?"

# benchmark -> (extra arguments, patterns its output must contain)
TINY_RUNS = {
    "fuzz_json_readers": ([], [rf"total\s+30\s+{NUMBER}\s+{NUMBER}\s+0\s+{NUMBER}"]),
    "snips_joint": ([], [rf'"test_intent_accuracy": {NUMBER}, .*"test_slot_f1": {NUMBER}, '
                         rf'.*"wall_seconds": {NUMBER}}}']),
    "gan_speed": ([], [rf"\(c\) full GAN training on 40 utterances .*: {NUMBER} min wall",
                       rf"\(a\) rollout adversarial steps/s .*: batched {NUMBER}, per-prefix "
                       rf"loop {NUMBER}, speed-up {NUMBER}x",
                       rf"\(b\) generation, top-p, batch 32: 64 valid annotated utterances in "
                       rf"{NUMBER} s = {NUMBER}/s wall"]),
    "source_aware_gan": ([], [rf"^delexicalised: \(a\) train_gan {NUMBER} min wall",
                              rf"^lexicalised: \(b\) {NUMBER} valid de utterances/s"]),
    "train_throughput": ([], [r"^cpu x 1: .*utterances/s.* s per epoch of 16"]),
    "xsid_regimes": (["--tracking-uri", "{tracking_uri}", "--work-dir", "{tmp_path}"],
                     [rf"^de-zeroshot: intent acc {NUMBER}, slot F1 {NUMBER}",
                      rf"^\| finetune \| {NUMBER} \|$"]),
    "side_by_side": ([], [rf"^rollout reward \(64 x N=8\): base {NUMBER} ms, this checkout "
                          rf"{NUMBER} ms = {NUMBER}x",
                          rf"^generate\(100\), .*= {NUMBER}x"]),
    "service_load": ([], [rf"^\s+1\s+3\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"
                          r"\s+\S+\s+0$"]),
}


# benchmarks whose tiny run needs a fixture of another test file, and where it is
ELSEWHERE = {"parse_latency": "tests/test_service_nlu.py (its --tiny run and JSON figures)"}


def test_every_benchmark_has_a_tiny_run():
    assert sorted([*TINY_RUNS, *ELSEWHERE]) == sorted(path.stem
                                                      for path in BENCHMARKS.glob("*.py"))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_benchmark_runs_in_its_tiny_mode_and_prints_its_figures(name, capsys, tmp_path,
                                                                 tracking_uri):
    arguments, patterns = TINY_RUNS[name]
    arguments = [argument.format(tracking_uri=tracking_uri, tmp_path=tmp_path)
                 for argument in arguments]
    status = load(name).main(["--tiny", *arguments])
    assert status in (0, None)
    printed = capsys.readouterr().out
    for pattern in patterns:
        assert re.search(pattern, printed, re.MULTILINE), (pattern, printed[-3000:])
