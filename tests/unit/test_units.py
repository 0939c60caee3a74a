from __future__ import annotations

import pytest

from shared.units import parse_duration, parse_size


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
