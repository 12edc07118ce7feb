"""Well-formed JSON with a value of any type in any field: each JSON reader reads it or raises
the project's typed error (``benchmarks/fuzz_json_readers.py`` runs the same cases by the
ten thousand)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from json_records import JSON_FORMATS, json_files, read_or_typed_error


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_json_readers_read_any_json_or_raise_a_typed_error(tmp_path, fmt):
    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(json_files(fmt))
    def check(text):
        read_or_typed_error(text, fmt, tmp_path)

    check()
