"""Readers and writers: every real file reads, round-trips, and matches its README counts;
malformed input gives a typed error located at file:line."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlu.errors import (EmptyFileError, EncodingError, FormatError, IOBError,
                        LengthMismatchError, NluDataError, SpanAlignmentError)
from nlu.formats import (FORMATS, detect_format, output_format, read_report, read_utterances,
                         write_utterances)
from nlu.utterance import Utterance
from json_records import STRING  # strings built to break writers
from shared_data import SHARED_DATA

FIXTURES = Path(__file__).parent / "data" / "formats"
SHARED = SHARED_DATA
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")

XSID = SHARED / "xsid" / "xSID-0.7"
XSID_TRAIN = SHARED / "xsid" / "en-train-v0.1"
SNIPS_BIO = SHARED / "snips" / "bio_goo2018"
SNIPS_JSON = SHARED / "snips" / "original_json"
FACEBOOK = SHARED / "facebook_multilingual_tod"


@functools.cache
def read_real(path: Path):
    """Each real file is read once per test session (several tests look at the same file)."""
    return read_report(path)


def comparable(utterance: Utterance, *, keep_text: bool = True) -> Utterance:
    """What a round trip must preserve: everything but where it was read from (and, for
    formats whose writer re-joins the text, the original text)."""
    return utterance.replace(source=None, text=utterance.text if keep_text else None)


# Formats whose writer keeps Utterance.text; the others document that text is re-joined.
KEEPS_TEXT = {"conll", "jsonl", "xsid-pair", "jointbert"}  # the pair layouts never had text


def real_files() -> list[tuple[str, Path]]:
    if not SHARED.is_dir():
        return []
    return ([("conll", path) for path in sorted(XSID.glob("*.conll"))]
            + [("xsid-pair", XSID_TRAIN)]
            + [("jointbert", SNIPS_BIO / split) for split in ("train", "valid", "test")]
            + [("schuster", path) for path in sorted(FACEBOOK.glob("*/*.tsv"))]
            + [("snips-json", path) for path in sorted(SNIPS_JSON.glob("*.json"))])


@needs_shared
@pytest.mark.parametrize("fmt, path", real_files(), ids=lambda value: getattr(value, "name", value))
def test_real_file_round_trips_through_its_own_format(fmt, path, tmp_path):
    assert detect_format(path) == fmt
    original = read_real(path).utterances
    out = tmp_path / path.name
    write_utterances(original, out, fmt)
    again = read_utterances(out, fmt, mode="strict")  # what we write is clean
    keep_text = fmt in KEEPS_TEXT
    assert [comparable(u, keep_text=keep_text) for u in again] == \
        [comparable(u, keep_text=keep_text) for u in original]
    assert all(u.source.startswith(str(path)) and u.source.rsplit(":", 1)[1].isdigit()
               for u in original)


@needs_shared
@pytest.mark.parametrize("path", [XSID / "de.test.conll", FACEBOOK / "th" / "eval-th.tsv",
                                  SNIPS_JSON / "validate_PlayMusic.json"], ids=lambda p: p.name)
def test_jsonl_is_lossless_including_source_and_text(path, tmp_path):
    original = read_real(path).utterances
    write_utterances(original, tmp_path / "out.jsonl", "jsonl")
    assert read_utterances(tmp_path / "out.jsonl", mode="strict") == original


# Counts from the dataset READMEs (xsid/README.md, snips/README.md,
# facebook_multilingual_tod/README.md).
XSID_COUNTS = {"no.test": 5500, "no.valid": 3300, "ja.test": 250, "ja.valid": 150}
README_COUNTS = (
    [(XSID / f"{name}.conll", XSID_COUNTS.get(name, 500 if name.endswith("test") else 300))
     for name in sorted({path.name.removesuffix(".conll") for path in XSID.glob("*.conll")})]
    if SHARED.is_dir() else []) + [
    (XSID_TRAIN, 43_605),
    (SNIPS_BIO / "train", 13_084), (SNIPS_BIO / "valid", 700), (SNIPS_BIO / "test", 700),
    (FACEBOOK / "en" / "eval-en.tsv", 4_181), (FACEBOOK / "en" / "test-en.tsv", 8_621),
    (FACEBOOK / "es" / "train-es.tsv", 3_616), (FACEBOOK / "es" / "eval-es.tsv", 1_983),
    (FACEBOOK / "es" / "test-es.tsv", 3_043), (FACEBOOK / "th" / "train-th.tsv", 2_156),
    (FACEBOOK / "th" / "eval-th.tsv", 1_235), (FACEBOOK / "th" / "test-th.tsv", 1_692),
]


@needs_shared
@pytest.mark.parametrize("path, expected", README_COUNTS,
                         ids=lambda value: getattr(value, "name", str(value)))
def test_counts_match_the_dataset_readmes(path, expected):
    report = read_real(path)
    if path.name == "no.valid.conll":
        # One utterance there has a single empty token (line 7156): it is skipped, with a
        # warning, because an utterance needs a token.
        assert len(report.utterances) == expected - 1
        assert report.warnings == [f"{path}:7156: utterance has no token left; skipped"]
    else:
        assert len(report.utterances) == expected


@needs_shared
def test_snips_json_counts_and_the_surrogate_emoji():
    train = [u for path in sorted(SNIPS_JSON.glob("train_*.json"))
             for u in read_real(path).utterances]
    valid = [u for path in sorted(SNIPS_JSON.glob("validate_*.json"))
             for u in read_real(path).utterances]
    assert (len(train), len(valid)) == (13_784, 700)
    assert any(any("\U0001F355" <= char <= "\U0001FAFF" or "\U0001F300" <= char <= "\U0001F5FF"
                   for token in u.tokens for char in token) for u in train)


@needs_shared
def test_xsid_train_malformed_tag_is_repaired_and_counted_or_rejected_in_strict_mode():
    report = read_real(XSID_TRAIN)
    malformed = [repair for repair in report.repairs if "'Orecurring_datetime' -> 'O'" in repair]
    assert len(malformed) == 357  # xsid/README.md: 357 tokens
    assert all(repair.startswith(f"{XSID_TRAIN / 'label.en'}:") for repair in malformed)
    assert not any("Orecurring_datetime" in u.tags for u in report.utterances)
    with pytest.raises(IOBError) as error:  # the first problem in the file is an IOB1 tag
        read_report(XSID_TRAIN, mode="strict")
    assert (error.value.path, error.value.line) == (str(XSID_TRAIN / "label.en"), 795)


@needs_shared
def test_schuster_spanish_reports_byte_offsets_and_misaligned_spans():
    path = FACEBOOK / "es" / "test-es.tsv"
    report = read_real(path)
    assert len(report.utterances) == 3_043
    assert f"{path}:1: token offsets are UTF-8 byte offsets; converted to character offsets" \
        in report.repairs
    # The README's span that "selects an empty string" is -2:30 (a negative offset).
    assert any(w.startswith(f"{path}:387: slot '-2:30:datetime' reaches outside the text")
               for w in report.warnings)
    assert all(w.startswith(f"{path}:") for w in report.warnings)


def fixture(name: str) -> Path:
    return FIXTURES / name


def test_conll_reads_both_comment_styles_and_language_from_file_name():
    first, second = read_utterances(fixture("de.sample.conll"))
    assert (first.id, first.text, first.language) == ("1", "Weck mich um fünf Uhr", "de")
    assert first.spans == [(2, 5, "datetime")]
    assert (second.id, second.intent, second.source) == \
        ("2", "weather/find", f"{fixture('de.sample.conll')}:11")
    assert read_utterances(fixture("de.sample.conll"), language="de-ba")[0].language == "de-ba"


def test_conll_writer_records_language_so_any_file_name_reads_back(tmp_path):
    original = read_utterances(fixture("de.sample.conll"))
    write_utterances(original, tmp_path / "whatever.conll", "conll")
    assert [u.replace(source=None) for u in read_utterances(tmp_path / "whatever.conll")] == \
        [u.replace(source=None) for u in original]


def test_xsid_pair_repairs_in_repair_mode_and_names_file_and_line_in_strict_mode():
    report = read_report(fixture("pair_ok"))
    label_file = fixture("pair_ok") / "label.en"
    assert report.repairs == [
        f"{label_file}:2: token 6: malformed 'Orecurring_datetime' -> 'O'",
        f"{label_file}:2: token 7: 'I-recurring_datetime' opens a slot -> 'B-recurring_datetime'"]
    assert read_utterances(fixture("pair_ok/text.en")) == report.utterances  # either file works
    with pytest.raises(IOBError) as error:
        read_report(fixture("pair_ok"), mode="strict")
    assert str(error.value).startswith(f"{label_file}:2: tags: token 6: malformed")


def test_snips_json_joins_surrogate_pairs_and_splits_tokens_at_chunk_boundaries(tmp_path):
    first, second = read_utterances(fixture("train_PlayMusic_tiny.json"))
    assert first.tokens == ("play", "Pizza", "\U0001F355", "Party", "by", "The", "Beatles")
    assert first.spans == [(1, 4, "track"), (5, 7, "artist")]
    assert first.text == "play Pizza \U0001F355 Party by The Beatles"
    assert second.tokens[4:6] == ("jazz", "'s")  # a chunk boundary is a token boundary
    assert (first.language, first.source) == ("en", f"{fixture('train_PlayMusic_tiny.json')}:4")
    write_utterances([first, second], tmp_path / "out.json", "snips-json")
    assert [u.replace(source=None, text=None) for u in read_utterances(tmp_path / "out.json")] \
        == [u.replace(source=None, text=None) for u in (first, second)]


def test_massive_annotation_locale_and_scenario(tmp_path):
    wake, weather, joke = read_utterances(fixture("en-US.massive.jsonl"))
    assert detect_format(fixture("en-US.massive.jsonl")) == "massive"
    assert wake.tokens == ("wake", "me", "up", "at", "five", "am", "this", "week")
    assert wake.spans == [(4, 6, "time"), (6, 8, "date")]
    assert (wake.language, wake.domain, wake.id, wake.intent) == ("en", "alarm", "0", "alarm_set")
    assert joke.spans == []
    french, japanese = read_utterances(fixture("mixed.massive.jsonl"))
    assert (french.language, japanese.language) == ("fr", "ja")
    assert japanese.tokens == ("明日", "の", "朝五時", "に起こして")  # brackets are boundaries
    everything = [wake, weather, joke, french, japanese]
    write_utterances(everything, tmp_path / "out.jsonl", "massive")
    assert [u.replace(source=None, text=None) for u in read_utterances(tmp_path / "out.jsonl")] \
        == [u.replace(source=None, text=None) for u in everything]


def test_every_format_round_trips_the_fixtures(tmp_path):
    utterances = (read_utterances(fixture("de.sample.conll"))
                  + read_utterances(fixture("pair_ok"), language="de"))
    for name, fmt in FORMATS.items():
        out = tmp_path / (name if fmt.writes_folder else f"de.out.{name}")
        write_utterances(utterances, out, name)
        again = read_utterances(out, name, language="de", mode="strict")
        # Fields some formats cannot carry: text (re-joined), id and domain (pair layouts).
        # snips-json groups utterances by intent, so compare in a canonical order.
        order = sorted if name == "snips-json" else list
        assert order((u.tokens, u.tags, u.intent, u.language) for u in again) == \
            order((u.tokens, u.tags, u.intent, u.language) for u in utterances), name


def test_schuster_misaligned_spans_are_expanded_and_reported_or_rejected_in_strict_mode():
    path = fixture("es.misaligned.tsv")
    report = read_report(path)
    assert report.utterances[0].spans == [(3, 6, "datetime")]  # "a las 7" -> "a las 7am"
    assert report.utterances[1].spans == [(5, 6, "datetime")]  # "7" -> "7am"
    assert report.warnings[0] == (f"{path}:1: slot '15:22:datetime' ('a las 7') does not align "
                                  f"with token boundaries; expanded to tokens 4-6 ('a las 7am')")
    assert report.warnings[1].startswith(f"{path}:2: slot '21:22:datetime'")
    with pytest.raises(SpanAlignmentError) as error:
        read_report(path, mode="strict")
    assert (error.value.path, error.value.line) == (str(path), 1)


def test_schuster_empty_span_is_reported_not_dropped_silently():
    path = fixture("es.empty_span.tsv")
    report = read_report(path)
    assert report.utterances[0].spans == []
    assert report.warnings == [f"{path}:1: slot '3:4:datetime' selects an empty string; skipped"]
    with pytest.raises(SpanAlignmentError):
        read_report(path, mode="strict")


def test_schuster_byte_offsets_are_converted():
    path = fixture("es.byte_offsets.tsv")
    report = read_report(path)
    assert report.utterances[0].spans == [(4, 5, "datetime")]
    assert report.repairs == [f"{path}:1: token offsets are UTF-8 byte offsets; converted to "
                              f"character offsets"]
    assert report.warnings == []


@pytest.mark.parametrize("name, error_type, line", [
    ("en.empty.conll", EmptyFileError, None),
    ("en.bad_utf8.conll", EncodingError, 1),
    ("en.bad_columns.conll", FormatError, 4),
    ("pair_mismatch", LengthMismatchError, 3),
    ("jointbert_mismatch", LengthMismatchError, 1),
    ("broken.massive.jsonl", FormatError, 2),
])
def test_malformed_input_gives_a_typed_located_error(name, error_type, line):
    with pytest.raises(error_type) as error:
        read_report(fixture(name))
    assert error.value.line == line
    assert str(fixture(name)) in str(error.value)


def test_broken_iob_is_repaired_or_rejected_in_strict_mode():
    path = fixture("en.broken_iob.conll")
    report = read_report(path)
    assert report.repairs == [f"{path}:7: token 4: 'I-datetime' opens a slot -> 'B-datetime'"]
    with pytest.raises(IOBError) as error:
        read_report(path, mode="strict")
    assert str(error.value) == (f"{path}:7: tags: token 4: 'I-datetime' follows 'O' "
                                f"(IOB2 needs B-datetime to open a slot)")


UTTERANCE = {"tokens": ["wake", "me"], "tags": ["O", "O"], "intent": "x", "language": "en"}
MASSIVE = {"id": "1", "locale": "en-US", "intent": "alarm_set", "annot_utt": "wake me"}
SNIPS = {"x": [{"data": [{"text": "wake "}, {"text": "me", "entity": "who"}]}]}


@pytest.mark.parametrize("fmt, record, field", [
    ("jsonl", {**UTTERANCE, "tags": [None, "O"]}, "tags"),
    ("jsonl", {**UTTERANCE, "tokens": [1, 2], "intent": 5}, "tokens"),
    ("jsonl", {**UTTERANCE, "tokens": "wake me"}, "tokens"),
    ("jsonl", {**UTTERANCE, "intent": ["x"]}, "intent"),
    ("jsonl", {**UTTERANCE, "language": 1}, "language"),
    ("jsonl", {**UTTERANCE, "id": [1]}, "id"),
    ("jsonl", {**UTTERANCE, "text": {"a": 1}}, "text"),
    ("jsonl", {**UTTERANCE, "source": False}, "source"),
    ("massive", {**MASSIVE, "intent": None}, "intent"),
    ("massive", {**MASSIVE, "locale": 5}, "locale"),
    ("massive", {**MASSIVE, "annot_utt": ["wake"]}, "annot_utt"),
    ("massive", {**MASSIVE, "id": 1}, "id"),
    ("massive", {**MASSIVE, "scenario": {}}, "scenario"),
    ("massive", {**MASSIVE, "utt": 0.5}, "utt"),
    ("snips-json", {"x": [{"data": [{"text": 5}]}]}, "text"),
    ("snips-json", {"x": [{"data": [{"text": "me", "entity": 3}]}]}, "entity"),
])
def test_json_values_of_the_wrong_type_give_a_typed_error_naming_line_and_field(
        tmp_path, fmt, record, field):
    path = tmp_path / ("in.json" if fmt == "snips-json" else "in.jsonl")
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    for mode in ("repair", "strict"):
        with pytest.raises(NluDataError) as error:
            read_report(path, fmt, mode=mode)
        assert (error.value.path, error.value.line, error.value.field) == (str(path), 1, field)


@pytest.mark.parametrize("fmt, document", [
    ("jsonl", [UTTERANCE]), ("jsonl", "wake me"), ("massive", [MASSIVE]),
    ("snips-json", {"x": ["wake me"]}), ("snips-json", {"x": [{"data": {"text": "a"}}]}),
    ("snips-json", {"x": [{"data": [["a"]]}]}),
])
def test_json_of_the_wrong_shape_is_a_format_error(tmp_path, fmt, document):
    path = tmp_path / ("in.json" if fmt == "snips-json" else "in.jsonl")
    path.write_text(json.dumps(document) + "\n", encoding="utf-8")
    with pytest.raises(FormatError):
        read_report(path, fmt)


@pytest.mark.parametrize("fmt", ["jsonl", "massive", "snips-json"])
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "1" * 5_000])
def test_json_python_cannot_parse_is_a_format_error_not_a_crash(tmp_path, fmt, text):
    # Valid syntax, yet json raises RecursionError (deep nesting) or ValueError (> 4,300 digits).
    path = tmp_path / ("in.json" if fmt == "snips-json" else "in.jsonl")
    path.write_text(f"\n{text}\n", encoding="utf-8")
    with pytest.raises(FormatError, match="JSON too large") as error:
        read_report(path, fmt)
    assert error.value.line == (1 if fmt == "snips-json" else 2)  # a document's first line


def test_a_newline_in_an_id_cannot_forge_a_conll_utterance(tmp_path):
    forged = "1\n1\tevil\tx\tB-pwn\n\n# text = z\n# intent = y\n1\tz\ty\tO"
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({**UTTERANCE, "id": forged}) + "\n", encoding="utf-8")
    for mode in ("repair", "strict"):
        with pytest.raises(NluDataError, match="control character U\\+000A") as error:
            read_report(path, mode=mode)
        assert (error.value.line, error.value.field) == (1, "id")


def test_snips_and_massive_text_control_characters_become_spaces(tmp_path):
    # 148 utterances of the Snips training files hold a newline (a chunk "\n" or "\n ...").
    snips = tmp_path / "in.json"
    snips.write_text(json.dumps({"x": [{"data": [{"text": "rate it"}, {"text": "\n"}]}]}),
                     encoding="utf-8")
    (utterance,) = read_utterances(snips, mode="strict")
    assert (utterance.tokens, utterance.text) == (("rate", "it"), "rate it ")
    massive = tmp_path / "in.jsonl"
    massive.write_text(json.dumps({**MASSIVE, "utt": "wake\tme"}) + "\n", encoding="utf-8")
    assert read_utterances(massive, "massive", mode="strict")[0].text == "wake me"


@pytest.mark.parametrize("fmt, label", [("massive", "a:b"), ("massive", "a]"),
                                        ("schuster", "a,b")])
def test_writers_reject_slot_types_their_format_cannot_express(tmp_path, fmt, label):
    utterance = Utterance(("wake",), (f"B-{label}",), "x", "en")
    with pytest.raises(FormatError, match="slot type"):
        write_utterances([utterance], tmp_path / "out", fmt)


def test_bad_utf8_error_names_the_byte(tmp_path):
    path = tmp_path / "en.x.conll"
    path.write_bytes(b"# intent = a\n1\tok\ta\tO\n\n# intent = a\n1\t\xff\ta\tO\n")
    with pytest.raises(EncodingError, match=r"en.x.conll:5: not valid UTF-8: byte 0xff at col"):
        read_report(path)


def test_detection_and_unknown_inputs(tmp_path):
    assert detect_format(fixture("pair_ok")) == "xsid-pair"
    assert detect_format(fixture("jointbert_ok/seq.in")) == "jointbert"
    assert detect_format(fixture("es.aligned.tsv")) == "schuster"
    assert output_format(tmp_path / "x.jsonl") == "jsonl"
    (tmp_path / "notes.txt").write_text("hello\n")
    for path in (tmp_path / "notes.txt", tmp_path / "missing.conll"):
        with pytest.raises(FormatError):
            read_report(path)
    with pytest.raises(NluDataError):
        read_report(fixture("de.sample.conll"), "jsonl")
    with pytest.raises(FormatError, match="cannot read"):
        read_report(fixture("pair_ok"), "conll")  # a folder where a file is expected


def test_gzip_files_are_read_and_written_by_their_inner_suffix(tmp_path):
    original = read_utterances(fixture("de.sample.conll"))
    out = tmp_path / "de.sample.conll.gz"
    write_utterances(original, out, output_format(out))
    assert detect_format(out) == "conll" and out.read_bytes()[:2] == b"\x1f\x8b"
    assert [u.replace(source=None) for u in read_utterances(out)] == \
        [u.replace(source=None) for u in original]
    write_utterances(original, tmp_path / "again.conll.gz", "conll")
    assert (tmp_path / "again.conll.gz").read_bytes() == out.read_bytes()  # reproducible


BUNDLE = Path(__file__).resolve().parents[1] / "experiments" / "data"


def test_bundled_sample_reads_with_the_counts_its_readme_states():
    sample = read_utterances(BUNDLE / "xsid" / "en-train-sample.jsonl", mode="strict")
    assert len(sample) == 3_000 and len({u.intent for u in sample}) == 16
    assert all(u.source.startswith("xsid/en-train-v0.1/label.en:") for u in sample)
    for language in ("ar", "da", "de", "en", "it", "ja", "nl", "zh"):
        expected = (150, 250) if language == "ja" else (300, 500)
        for split, count in zip(("valid", "test"), expected):
            path = BUNDLE / "xsid" / "xSID-0.7" / f"{language}.{split}.conll.gz"
            utterances = read_utterances(path)
            assert len(utterances) == count and utterances[0].language == language
    spanish = {split: len(read_utterances(BUNDLE / "facebook_multilingual_tod" / "es" /
                                          f"{split}-es.tsv.gz"))
               for split in ("train", "eval", "test")}
    assert spanish == {"train": 3_616, "eval": 1_983, "test": 3_043}


TOKEN = st.text(st.sampled_from("abcXYZé#'\"\\:,.?!-/{}[]ß明日\U0001F355"), min_size=1, max_size=6)
LABEL = st.sampled_from(["datetime", "weather/attribute", "object_name", "B", "x-y"])


@st.composite
def utterances(draw) -> Utterance:
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=8))
    tags, previous = [], None
    for _ in tokens:
        choice = draw(st.sampled_from(["O", "B", "I"] if previous else ["O", "B"]))
        if choice == "B":
            previous = draw(LABEL)
            tags.append(f"B-{previous}")
        elif choice == "I":
            tags.append(f"I-{previous}")
        else:
            previous = None
            tags.append("O")
    intent = draw(st.sampled_from(["alarm/set_alarm", "PlayMusic", "weather_query"]))
    return Utterance(tokens, tags, intent, "de")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # tmp_path is reused
@given(st.lists(utterances(), min_size=1, max_size=5))
def test_every_format_round_trips_arbitrary_utterances(tmp_path, generated):
    for name, fmt in FORMATS.items():
        out = tmp_path / (name if fmt.writes_folder else f"de.any.{name}")
        if name == "massive" and any("[" in t or "]" in t for u in generated for t in u.tokens):
            with pytest.raises(FormatError, match="cannot express"):
                write_utterances(generated, out, name)
            continue
        write_utterances(generated, out, name)
        again = read_utterances(out, name, language="de", mode="strict")
        order = sorted if name == "snips-json" else list
        assert order((u.tokens, u.tags, u.intent) for u in again) == \
            order((u.tokens, u.tags, u.intent) for u in generated), name


def kept_by_conll(value: str | None) -> str | None:
    """What a ``# key = value`` comment gives back: the stripped value, if any is left."""
    return (value or "").strip() or None


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # tmp_path is reused
@given(st.lists(st.tuples(utterances(), st.fixed_dictionaries(
    {name: st.none() | STRING for name in ("id", "domain", "text")}), st.none() | STRING),
    min_size=1, max_size=4))
def test_no_string_the_record_accepts_lets_a_writer_split_or_forge_a_record(tmp_path, drawn):
    kept = []
    for utterance, optional, label in drawn:
        if label is not None:  # a B- tag may end any valid sequence
            optional["tags"] = (*utterance.tags[:-1], f"B-{label}")
        try:  # the record rejects what it must (a typed error); keep what it accepts
            kept.append(utterance.replace(**optional))
        except NluDataError:
            continue
    for name, fmt in FORMATS.items():
        if not kept:
            break
        out = tmp_path / (name if fmt.writes_folder else f"de.any.{name}")
        try:
            write_utterances(kept, out, name)
        except FormatError as error:  # documented limits of MASSIVE and Schuster
            assert name in ("massive", "schuster") and "cannot express" in str(error), name
            continue
        again = read_utterances(out, name, language="de", mode="strict")
        order = sorted if name == "snips-json" else list
        assert order((u.tokens, u.tags, u.intent) for u in again) == \
            order((u.tokens, u.tags, u.intent) for u in kept), name
        if name == "jsonl":
            assert [u.replace(source=None) for u in again] == kept
        if name == "conll":
            assert [(u.id, u.domain) for u in again] == \
                [(kept_by_conll(u.id), kept_by_conll(u.domain)) for u in kept]


@needs_shared
def test_xsid_quirks_are_repaired_and_reported():
    zh = read_real(XSID / "zh.test.conll")
    assert len(zh.repairs) == 6 and all("is empty; dropped (tag 'O')" in r for r in zh.repairs)
    assert all(all(u.tokens) for u in zh.utterances)
    de_muc = read_real(XSID / "de-muc.valid.conll")
    assert de_muc.repairs[0] == (f"{XSID / 'de-muc.valid.conll'}:1001: token line says intent "
                                 f"'reminder/set_reminder', the utterance says "
                                 f"'reminder/cancel_reminder' -> 'reminder/cancel_reminder'")
    with pytest.raises(FormatError) as error:
        read_report(XSID / "de-muc.valid.conll", mode="strict")
    assert error.value.line == 1001
