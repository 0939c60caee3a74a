"""Slurm hostlist expressions, pure: `gpu[01-04,07],cpu-a` <-> gpu01 gpu02 gpu03 gpu04 gpu07
cpu-a.

As Slurm writes them (`scontrol show hostnames`): names separated by commas outside
brackets; a bracket holds comma-separated numbers and ranges `a-b`, zero-padded to the width
of the range's first number (`[08-10]` -> 08 09 10); several brackets in one name multiply
(`r[1-2]n[1-2]` -> r1n1 r1n2 r2n1 r2n2). A range that runs backwards or a bracket left open
is an error with the expression in its message.
"""

from __future__ import annotations

import itertools
import re

from shared.errors import DormouseError

MAX_HOSTS = 100_000  # a typo like [1-99999999] is refused, not expanded into memory
RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class HostlistError(DormouseError):
    """A hostlist expression Slurm would not write."""


def expand(expression: str) -> list[str]:
    """Every host name of the expression, in order, duplicates kept as written."""
    hosts: list[str] = []
    for part in _split(expression.strip()):
        hosts.extend(_expand_one(part, expression))
        if len(hosts) > MAX_HOSTS:
            raise HostlistError(f"hostlist {expression!r}: more than {MAX_HOSTS} hosts")
    return hosts


def _split(expression: str) -> list[str]:
    """The comma-separated names, commas inside brackets kept."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in expression:
        if char == "[":
            depth += 1
            if depth > 1:
                raise HostlistError(f"hostlist {expression!r}: brackets inside brackets")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"hostlist {expression!r}: ']' without '['")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise HostlistError(f"hostlist {expression!r}: '[' not closed")
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def _expand_one(name: str, expression: str) -> list[str]:
    pieces = re.split(r"\[([^\]]*)\]", name)  # text, bracket, text, bracket, ..., text
    choices = [[pieces[0]]]
    for i in range(1, len(pieces), 2):
        choices.append(_numbers(pieces[i], expression))
        choices.append([pieces[i + 1]])
    return ["".join(parts) for parts in itertools.product(*choices)]


def _numbers(bracket: str, expression: str) -> list[str]:
    found: list[str] = []
    for item in bracket.split(","):
        match = RANGE.match(item.strip())
        if match is None:
            raise HostlistError(f"hostlist {expression!r}: {item.strip()!r} is not N or N-M")
        first, last = match.group(1), match.group(2) or match.group(1)
        if int(last) < int(first):
            raise HostlistError(f"hostlist {expression!r}: range {item.strip()} runs backwards")
        if int(last) - int(first) >= MAX_HOSTS:
            raise HostlistError(f"hostlist {expression!r}: more than {MAX_HOSTS} hosts")
        width = len(first) if first.startswith("0") else 0
        found.extend(str(n).zfill(width) for n in range(int(first), int(last) + 1))
    return found


def compress(hosts: list[str]) -> str:
    """A short expression for `hosts` (order kept, runs of one prefix and width folded):
    what `scontrol` is given and the log shows."""
    groups: list[tuple[str, str, list[int], int]] = []  # prefix, suffix, numbers, width
    for host in hosts:
        match = re.match(r"^(.*?)(\d+)(\D*)$", host)
        if match is None:
            groups.append((host, "", [], 0))
            continue
        prefix, digits, suffix = match.groups()
        width = len(digits) if digits.startswith("0") else 0
        last = groups[-1] if groups else None
        if last is not None and last[2] and last[:2] == (prefix, suffix) and last[3] == width:
            last[2].append(int(digits))
        else:
            groups.append((prefix, suffix, [int(digits)], width))
    return ",".join(_fold(*g) for g in groups)


def _fold(prefix: str, suffix: str, numbers: list[int], width: int) -> str:
    if not numbers:
        return prefix
    if len(numbers) == 1:
        return f"{prefix}{str(numbers[0]).zfill(width)}{suffix}"
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ",".join(
        str(r[0]).zfill(width)
        if len(r) == 1
        else f"{str(r[0]).zfill(width)}-{str(r[-1]).zfill(width)}"
        for r in runs
    )
    return f"{prefix}[{text}]{suffix}"
