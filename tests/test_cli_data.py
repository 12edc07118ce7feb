"""``nlu-bootstrap data ...``: stats, validate, convert, sample; exit codes and messages."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlu.formats import read_utterances
from service.cli import main
from shared_data import SHARED_DATA

FIXTURES = Path(__file__).parent / "data" / "formats"
SHARED = SHARED_DATA
REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["data", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stats_prints_files_and_tables(capsys):
    code, out, _ = run(capsys, "stats", FIXTURES / "de.sample.conll", FIXTURES / "pair_ok")
    assert code == 0
    assert "utterances  5" in out
    assert "de                 2" in out and "en                 3" in out
    assert re.search(rf"^{re.escape(str(FIXTURES / 'pair_ok'))} +xsid-pair +3 +2 +0$", out,
                     re.MULTILINE)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
@pytest.mark.parametrize("path, count", [
    ("xsid/en-train-v0.1", "43,605"), ("snips/bio_goo2018/train", "13,084"),
    ("facebook_multilingual_tod/es/train-es.tsv", "3,616"),
])
def test_stats_counts_match_the_readmes(capsys, path, count):
    code, out, _ = run(capsys, "stats", SHARED / path, "--top", "3")
    assert code == 0
    assert f"utterances  {count}\n" in out


def test_stats_with_label_mapping(capsys):
    code, out, _ = run(capsys, "stats", FIXTURES / "jointbert_ok", "--map-labels", "snips-to-xsid")
    assert code == 0
    assert "reference" in out and "playlist_owner" not in out


def test_validate_lists_repairs_and_exits_1_when_not_clean(capsys):
    code, out, _ = run(capsys, "validate", FIXTURES / "pair_ok")
    assert code == 1
    assert f"repair: {FIXTURES / 'pair_ok' / 'label.en'}:2: token 6: malformed" in out
    code, out, _ = run(capsys, "validate", FIXTURES / "de.sample.conll")
    assert code == 0 and "OK" in out


@pytest.mark.parametrize("argv, where", [
    (["validate", "--strict", FIXTURES / "en.broken_iob.conll"], "en.broken_iob.conll:7:"),
    (["stats", FIXTURES / "en.bad_utf8.conll"], "en.bad_utf8.conll:1:"),
    (["stats", FIXTURES / "pair_mismatch"], "label.en:3:"),
    (["stats", "--strict", FIXTURES / "es.misaligned.tsv"], "es.misaligned.tsv:1:"),
    (["stats", FIXTURES / "en.empty.conll"], "en.empty.conll: file is empty"),
    (["stats", FIXTURES / "missing.conll"], "missing.conll: no such file"),
])
def test_bad_input_exits_2_with_file_and_line(capsys, argv, where):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and where in err


INJECTED_ID = "1\n1\tevil\tx\tB-pwn\n\n# text = z\n# intent = y\n1\tz\ty\tO"


@pytest.mark.parametrize("name, content, argv, field", [
    ("t1.jsonl", '{"tokens":["a","b"],"tags":[null,"O"],"intent":"x","language":"en"}',
     ["validate"], "tags"),
    ("t2.jsonl", '{"tokens":[1,2],"tags":["O","O"],"intent":5,"language":"en"}', ["stats"],
     "tokens"),
    ("m.jsonl", '{"id":"1","locale":"en-US","intent":null,"annot_utt":"wake me up"}',
     ["stats", "--format", "massive"], "intent"),
    ("s.json", '{"x": [{"data": [{"text": 5}]}]}', ["stats"], "text"),
    ("id.jsonl", '{"tokens":["a"],"tags":["O"],"intent":"x","language":"en","id":[1]}',
     ["stats"], "id"),
    ("inj.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O", "O"], "intent": "x",
                              "language": "en", "id": INJECTED_ID}), ["convert"], "id"),
])
def test_wrong_types_and_control_characters_exit_2_naming_file_line_and_field(
        capsys, tmp_path, name, content, argv, field):
    path = tmp_path / name
    path.write_text(content + "\n", encoding="utf-8")
    out = ["--out", tmp_path / "out.conll"] if argv == ["convert"] else []
    for strict in ([], ["--strict"]):
        code, _, err = run(capsys, *argv[:1], path, *argv[1:], *strict, *out)
        assert code == 2 and err.startswith(f"error: {path}:1: {field}: "), err
    assert not (tmp_path / "out.conll").exists()


def test_convert_writes_a_format_that_reads_back(capsys, tmp_path):
    out = tmp_path / "de.conll"
    code, stdout, _ = run(capsys, "convert", FIXTURES / "es.aligned.tsv", "--out", out)
    assert code == 0 and "wrote 3 utterances" in stdout
    assert [(u.tokens, u.tags) for u in read_utterances(out)] == \
        [(u.tokens, u.tags) for u in read_utterances(FIXTURES / "es.aligned.tsv")]
    code, _, _ = run(capsys, "convert", FIXTURES / "de.sample.conll", "--to", "jointbert",
                     "--out", tmp_path / "jb")
    assert code == 0 and (tmp_path / "jb" / "seq.out").is_file()
    code, _, err = run(capsys, "convert", FIXTURES / "de.sample.conll", "--out", tmp_path / "x.txt")
    assert code == 2 and "cannot tell the output format" in err


def test_sample_is_seeded_and_stratified(capsys, tmp_path):
    args = ["sample", FIXTURES / "de.sample.conll", FIXTURES / "pair_ok", FIXTURES / "pair_ok",
            "--dedupe", "--per-intent", "1", "--seed", "3"]
    run(capsys, *args, "--out", tmp_path / "a.jsonl")
    run(capsys, *args, "--out", tmp_path / "b.jsonl")
    sample = read_utterances(tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert sorted(u.intent for u in sample) == sorted(
        {"alarm/set_alarm", "weather/find", "reminder/set_reminder", "alarm/show_alarms"})
    assert all(u.source.startswith(str(FIXTURES)) for u in sample)  # jsonl keeps provenance


def test_console_script_runs_data_stats_without_importing_torch(tmp_path):
    script = shutil.which("nlu-bootstrap", path=str(Path(sys.executable).parent))
    assert script, "the console script is installed with the package"
    result = subprocess.run([script, "data", "stats", str(FIXTURES / "de.sample.conll")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "utterances  2" in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from service.cli import main; "
         f"main(['data', 'stats', {str(FIXTURES / 'de.sample.conll')!r}]); "
         "heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'mlflow') "
         "if m in sys.modules]; print('HEAVY', heavy)"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "HEAVY []" in probe.stdout, probe.stdout + probe.stderr
