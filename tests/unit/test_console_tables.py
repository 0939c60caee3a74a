"""Listings for people: short ones through rich, long ones as aligned plain columns
(rich lays out each cell at ~0.5 ms: a 1,440-row history took most of a second)."""

from __future__ import annotations

import re

from shared.edge import console


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_a_long_listing_is_one_aligned_line_per_row_never_cut(capsys):
    rows = [
        {"node": f"gpu-node-with-a-long-name-{i:04d}", "cpu_util_pct": i * 1.5, "mem_used_bytes": i}
        for i in range(console.LONG_TABLE + 1)
    ]
    rows[3]["cpu_util_pct"] = None
    console.print_rows(rows, ["node", "cpu_util_pct", "mem_used_bytes"], as_json=False, title="T")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "T"
    assert cells(lines[1]) == ["node", "cpu_util_pct", "mem_used_bytes"]
    assert len(lines) == len(rows) + 2
    assert cells(lines[2 + 3]) == ["gpu-node-with-a-long-name-0003", "-", "3 B"]
    assert cells(lines[-1]) == ["gpu-node-with-a-long-name-0100", "150", "100 B"]
    ends = {len(line) for line in lines[1:]}  # numbers right-aligned: every row ends alike
    assert len(ends) == 1


def test_a_short_listing_stays_a_rich_table(capsys):
    rows = [{"node": "a", "state": "online"}]
    console.print_rows(rows, ["node", "state"], as_json=False)
    out = capsys.readouterr().out
    assert "┃" in out or "│" in out
    assert "online" in out
