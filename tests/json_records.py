"""Hostile JSON files for the JSON readers (jsonl, massive, snips-json), and the check they
must pass. Shared by ``tests/test_json_fuzz.py`` (a few hundred cases) and
``benchmarks/fuzz_json_readers.py`` (tens of thousands), so both run the same cases.

Every field, list item and nesting level holds either a plausible value (so reads get deep
into validation, and some succeed) or any JSON value: null, bool, int, float (NaN and
infinities included), string, list or object.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

from nlu.errors import NluDataError
from nlu.formats import read_report, read_utterances, write_utterances

JSON_FORMATS = ("jsonl", "massive", "snips-json")
SUFFIXES = {"jsonl": ".jsonl", "massive": ".jsonl", "snips-json": ".json"}

# Strings built to break line- and column-based writers (controls, separators, brackets, a
# lone surrogate), and any string at all.
STRING = (st.text(st.sampled_from("a #=:,-[]{}\"\\\t\n\r\x00\x1b\x7f\x85\x9f\u00a0\u2028\ud800"),
                  max_size=6)
          | st.text(max_size=6))
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | STRING,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(STRING, children,
                                                                       max_size=3),
    max_leaves=5)


def one_in(n: int, rare: st.SearchStrategy, usual: st.SearchStrategy) -> st.SearchStrategy:
    """``rare`` about once in ``n`` draws, else ``usual`` (so some records get far, or read)."""
    # Hypothesis favours a strategy's first choice (and integers' bounds): rare comes last.
    return st.sampled_from(range(n)).flatmap(lambda roll: rare if roll == n - 1 else usual)


def sometimes_anything(plausible: st.SearchStrategy) -> st.SearchStrategy:
    """``plausible``, or about once in eight draws any JSON value."""
    return one_in(8, JSON_VALUE, plausible)


def sequence(item: st.SearchStrategy, size: int) -> st.SearchStrategy:
    """A list of ``size`` items, each plausible or anything (equal lengths reach the tags)."""
    return st.lists(sometimes_anything(item), min_size=size, max_size=size)


WORD = one_in(4, STRING, st.sampled_from(["wake", "me", "five", "", "a b", "[", "]", ":"]))
TAG = one_in(4, STRING, st.sampled_from(["O", "B-time", "I-time", "B-", "I-x", "B-a b", "x"]))
INTENT = one_in(4, STRING, st.sampled_from(["alarm_set", "PlayMusic", "weather/find", ""]))
LANGUAGE = one_in(4, STRING, st.sampled_from(["en", "de", "en-US", ""]))
TEXT = one_in(4, STRING, st.sampled_from(["1", "wake me", " x ", "a = b", "#"]))
ANNOTATION = one_in(4, STRING | st.text(st.sampled_from("ab :[]\t\n"), max_size=12),
                    st.sampled_from(["wake me", "wake me at [time : five am]", "[time : ]",
                                     "a [b", "[a:b] c]", ""]))


@st.composite
def jsonl_record(draw) -> object:
    size = draw(st.integers(1, 4))  # an empty list is one of JSON_VALUE's
    required = {"tokens": sequence(WORD, size), "tags": sequence(TAG, size),
                "intent": INTENT, "language": LANGUAGE}
    optional = {name: TEXT for name in ("id", "domain", "source", "text")}
    return draw(st.fixed_dictionaries(
        {name: sometimes_anything(value) for name, value in required.items()},
        optional={name: sometimes_anything(value) for name, value in optional.items()}))


MASSIVE_RECORD = st.fixed_dictionaries(
    {"locale": sometimes_anything(LANGUAGE), "intent": sometimes_anything(INTENT),
     "annot_utt": sometimes_anything(ANNOTATION)},
    optional={name: sometimes_anything(TEXT)
              for name in ("id", "partition", "scenario", "utt", "worker_id")})
SNIPS_CHUNK = st.fixed_dictionaries({"text": sometimes_anything(TEXT)},
                                    optional={"entity": sometimes_anything(TAG)})
SNIPS_EXAMPLE = st.fixed_dictionaries(
    {"data": sometimes_anything(st.lists(sometimes_anything(SNIPS_CHUNK), min_size=1, max_size=4))})
SNIPS_DOCUMENT = st.dictionaries(
    INTENT, sometimes_anything(st.lists(sometimes_anything(SNIPS_EXAMPLE), min_size=1, max_size=3)),
    min_size=1, max_size=3)


@st.composite
def json_files(draw, fmt: str) -> str:
    """The text of one file of format ``fmt``: one to three records, or a Snips document;
    the top level itself is sometimes any JSON value."""
    if fmt == "snips-json":
        documents = [draw(sometimes_anything(SNIPS_DOCUMENT))]
    else:
        record = jsonl_record() if fmt == "jsonl" else MASSIVE_RECORD
        documents = draw(st.lists(sometimes_anything(record), min_size=1, max_size=3))
    ensure_ascii = draw(st.booleans())  # raw U+2028, NEL... as well as \u escapes
    return "\n".join(json.dumps(document, ensure_ascii=ensure_ascii) for document in documents)


def read_or_typed_error(text: str, fmt: str, folder: Path) -> int | None:
    """Write ``text`` to a ``fmt`` file in ``folder`` and read it in both modes: a read must
    succeed or raise ``NluDataError``; anything else propagates. What reads back is written
    as CoNLL and read again, which must give the same number of utterances (no record split
    or forged by a line-based writer). Returns that number, or ``None`` if both reads failed.
    """
    path = folder / f"in{SUFFIXES[fmt]}"
    # surrogatepass: a lone surrogate written raw is bad UTF-8 the reader must reject.
    path.write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
    count = None
    for mode in ("repair", "strict"):
        try:
            utterances = read_report(path, fmt, mode=mode).utterances
        except NluDataError:
            continue
        conll = folder / "out.conll"
        write_utterances(utterances, conll, "conll")
        again = read_utterances(conll, "conll", mode="strict")
        assert len(again) == len(utterances), (fmt, mode, text)
        count = len(utterances)
    return count
