from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("90", 90),
        (12, 12),
        (1.5, 1.5),
        ("1.5h", 5400),
        (" 2 m ", 120),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "5x", "-5s", "5s-", "1h 30", True, float("nan"), -1])
def test_bad_durations(text):
    with pytest.raises(ValueError, match=r"duration|finite"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 * 10**9),
        ("64MiB", 64 * 2**20),
        ("512k", 512_000),
        ("1024", 1024),
        (7, 7),
        ("1.5GiB", 3 * 2**29),
        ("10 MB", 10**7),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", True, -3])
def test_bad_sizes(text):
    with pytest.raises(ValueError, match=r"size|finite"):
        parse_size(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (90, "1m30s"), (604800, "1w"), (7776000, "90d"), (1.5, "1s500ms")],
)
def test_format_duration_is_what_an_operator_types(seconds, text):
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_format_duration_reads_back_exactly(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)
