"""Atomic output: files appear whole, with the permissions the process umask gives."""

from __future__ import annotations

import os
import stat

import pytest

from nlu.atomic import atomic_open, remove_stale_temporaries, write_json
from nlu.formats import write_utterances
from nlu.utterance import Utterance


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_respect_the_umask(tmp_path, umask):
    umask(0o022)
    write_json(tmp_path / "labels.json", {"intents": ["a"]})
    with atomic_open(tmp_path / "model.bin", "wb") as stream:
        stream.write(b"\0")
    write_utterances([Utterance(("hi",), ("O",), "greet", "en")], tmp_path / "x.conll", "conll")
    write_utterances([Utterance(("hi",), ("O",), "greet", "en")], tmp_path / "x.jsonl.gz", "jsonl")
    for name in ("labels.json", "model.bin", "x.conll", "x.jsonl.gz"):
        assert mode_of(tmp_path / name) == 0o644, name
    umask(0o077)
    write_json(tmp_path / "private.json", {})
    assert mode_of(tmp_path / "private.json") == 0o600


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "out.txt") as stream:
        stream.write("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_only_this_modules_leftover_temporaries_are_removed(tmp_path):
    """A killed writer's ``.<name>.<12 hex>.tmp`` goes; a user's own ``*.tmp`` files stay."""
    nested = tmp_path / "checkpoints"
    nested.mkdir()
    leftover = nested / ".best.ckpt.0123456789ab.tmp"
    leftover.write_bytes(b"half a checkpoint")
    kept = [tmp_path / "notes.tmp", tmp_path / ".draft.tmp", nested / ".x.0123.tmp"]
    for path in kept:
        path.write_text("mine", encoding="utf-8")
    assert remove_stale_temporaries(tmp_path) == [leftover]
    assert not leftover.exists() and all(path.exists() for path in kept)
