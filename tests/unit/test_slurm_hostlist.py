"""Slurm hostlist expressions: hand-picked cases as Slurm expands them, refusals, and a
hypothesis round trip against a reference expansion written independently here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.slurm.hostlist import HostlistError, compress, expand


@pytest.mark.parametrize(
    ("expression", "hosts"),
    [
        ("gpu[01-04,07],cpu-a", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07", "cpu-a"]),
        ("node1", ["node1"]),
        ("a[8-10]", ["a8", "a9", "a10"]),
        ("x[08-10]", ["x08", "x09", "x10"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("n[1-2]-ib", ["n1-ib", "n2-ib"]),
        (" a1 , b2 ", ["a1", "b2"]),
        ("", []),
    ],
)
def test_expansions_as_slurm_writes_them(expression, hosts):
    assert expand(expression) == hosts


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("gpu[01-04", "not closed"),
        ("gpu01-04]", "without"),
        ("gpu[4-1]", "backwards"),
        ("gpu[a-b]", "not N or N-M"),
        ("gpu[1-99999999]", "more than"),
        ("r[1-[2]]", "inside brackets"),
    ],
)
def test_what_slurm_would_not_write_is_refused_with_the_expression(expression, why):
    with pytest.raises(HostlistError, match=why) as refused:
        expand(expression)
    assert expression in str(refused.value)


def reference(expression: str) -> list[str]:
    """A second, naive expansion: one bracket per name at most (what the strategy writes)."""
    out = []
    for part in _parts(expression):
        if "[" not in part:
            out.append(part)
            continue
        head, rest = part.split("[", 1)
        inside, tail = rest.split("]", 1)
        for item in inside.split(","):
            lo, _, hi = item.partition("-")
            pad = len(lo) if lo.startswith("0") else 0
            out += [f"{head}{str(n).zfill(pad)}{tail}" for n in range(int(lo), int(hi or lo) + 1)]
    return out


def _parts(expression: str) -> list[str]:
    parts, depth, word = [], 0, ""
    for char in expression:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and not depth:
            parts.append(word)
            word = ""
        else:
            word += char
    return [*parts, word] if word else parts


names = st.builds(
    lambda prefix, number, width, suffix: f"{prefix}{str(number).zfill(width)}{suffix}",
    st.text("abgpu-", min_size=1, max_size=4).filter(lambda p: not p[-1].isdigit()),
    st.integers(0, 300),
    st.sampled_from([0, 2, 3]),
    st.sampled_from(["", "-ib"]),
)


@given(st.lists(names, max_size=30))
def test_compress_then_expand_gives_the_hosts_back_as_the_reference_does(hosts):
    expression = compress(hosts)
    assert expand(expression) == hosts
    assert reference(expression) == hosts
