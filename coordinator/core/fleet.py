"""A metric over many nodes, grouped (`dormouse history --by`): pure numpy over the rollup
tier's entries, so a week of a thousand nodes is a few array passes, not a Python loop per
bucket.

Each entry is one rollup bucket of one member (a node, or one GPU of a node for a GPU
metric) as `core.aggregates` stores it: (count, value, min, max), the value being the
average of a gauge or the increase of a counter. First a member's buckets inside one step
merge (count-weighted average, summed increase, min of mins, max of maxes); then the
members of a group combine at each step by `agg`. A step where no member of a group has a
sample yields no point: a gap, never a line drawn across it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from coordinator.core.aggregates import COUNT, MAX, MIN, VALUE

AGGS = ("avg", "min", "max", "sum", "p95")


@dataclass(frozen=True, slots=True)
class Entries:
    """Parallel arrays, one element per (bucket, member)."""

    member: np.ndarray  # int: the member (node, or node's GPU)
    group: np.ndarray  # int: the member's group
    step: np.ndarray  # int: the step its bucket falls in
    values: np.ndarray  # (n, 4) float: count, value, min, max


@dataclass(frozen=True, slots=True)
class Points:
    """One point per (group, step) that has data, sorted by group then step."""

    group: np.ndarray
    step: np.ndarray
    value: np.ndarray


def combine(entries: Entries, agg: str, counter: bool) -> Points:
    """Members' steps first (see the module's docstring), then each group's members."""
    return reduce_groups(*member_values(entries, agg, counter), agg)


Values = tuple[np.ndarray, np.ndarray, np.ndarray]  # group, step, value: one per member-step


def member_values(entries: Entries, agg: str, counter: bool, unique: bool = False) -> Values:
    """(group, step, the value `agg` combines), one per member and step. `unique`: the
    caller knows each member has at most one entry per step (a tier read at its own
    width), so nothing needs merging (nor sorting)."""
    if agg not in AGGS:
        raise ValueError(f"agg must be one of {', '.join(AGGS)}")
    field = {"min": MIN, "max": MAX}.get(agg, VALUE)
    if unique:
        values = entries.values
        has = (np.nan_to_num(values[:, COUNT]) > 0) & ~np.isnan(values[:, field])
        return entries.group[has], entries.step[has], values[has, field]
    n_steps = int(entries.step.max()) + 1 if len(entries.step) else 1
    keys, first, merged = merge_by(entries.member * n_steps + entries.step, entries.values,
                                   counter)  # fmt: skip
    has = (merged[:, COUNT] > 0) & ~np.isnan(merged[:, field])
    return entries.group[first][has], (keys % n_steps)[has], merged[has, field]


def reduce_groups(group: np.ndarray, step: np.ndarray, value: np.ndarray, agg: str) -> Points:
    """Each group's members' values at each step combined by `agg`: dense counting over
    groups x steps (no sort), except p95."""
    if not len(value):
        empty = np.zeros(0, dtype=np.int64)
        return Points(empty, empty, np.zeros(0))
    n_steps = int(step.max()) + 1
    index = group * n_steps + step
    size = int(index.max()) + 1
    present = np.bincount(index, None, size) > 0
    if agg == "p95":
        keys, inverse = np.unique(index, return_inverse=True)
        return Points(keys // n_steps, keys % n_steps, _reduce(agg, inverse, value, len(keys)))
    where = np.flatnonzero(present)
    return Points(where // n_steps, where % n_steps, _reduce(agg, index, value, size)[where])


def merge_by(keys: np.ndarray, values: np.ndarray, counter: bool) -> tuple[np.ndarray, ...]:
    """(distinct keys, where each first occurs, their merged (count, value, min, max)): a
    key's entries' counts summed, values averaged weighted by count (a counter's increases
    summed), min of mins, max of maxes; entries without samples count for nothing."""
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    size = len(unique)
    counts = np.nan_to_num(values[:, COUNT])
    value = np.where(counts > 0, np.nan_to_num(values[:, VALUE]), 0.0)
    out = np.empty((size, 4))
    out[:, COUNT] = np.bincount(inverse, counts, size)
    if counter:
        out[:, VALUE] = np.bincount(inverse, value, size)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, VALUE] = np.bincount(inverse, value * counts, size) / out[:, COUNT]
    for field, reduce in ((MIN, np.fmin), (MAX, np.fmax)):
        out[:, field] = np.nan
        reduce.at(out[:, field], inverse, np.where(counts > 0, values[:, field], np.nan))
    return unique, first, out


def _reduce(agg: str, inverse: np.ndarray, value: np.ndarray, size: int) -> np.ndarray:
    """`value` reduced per `inverse` label (0..size-1) by `agg`."""
    if agg == "sum":
        return np.bincount(inverse, value, size)
    if agg == "avg":
        with np.errstate(invalid="ignore"):  # labels no entry has: not read by the caller
            return np.bincount(inverse, value, size) / np.bincount(inverse, None, size)
    if agg in {"min", "max"}:
        out = np.full(size, np.inf if agg == "min" else -np.inf)
        (np.minimum if agg == "min" else np.maximum).at(out, inverse, value)
        return out
    return _percentile(inverse, value, size, 0.95)


def _percentile(inverse: np.ndarray, value: np.ndarray, size: int, q: float) -> np.ndarray:
    """Per label, the q-quantile with linear interpolation (numpy's default method)."""
    order = np.lexsort((value, inverse))
    ordered = value[order]
    counts = np.bincount(inverse, None, size).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = (counts - 1) * q
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, counts - 1)
    fraction = position - low
    return ordered[starts + low] * (1 - fraction) + ordered[starts + high] * fraction


@dataclass(frozen=True, slots=True)
class Grouping:
    """Which nodes a fleet query reads, and how they group: `group_of` maps a node to its
    group's position in `groups` (each group as its labels: {"node": n}, {"team": "a"},
    or {} for the whole fleet, as Prometheus names an aggregate without `by`)."""

    group_of: dict[str, int]
    groups: list[dict[str, str | None]]


def parse_by(text: str) -> tuple[str, str | None]:
    """ "node", "fleet" or "label:KEY" into (kind, key)."""
    if text in {"node", "fleet"}:
        return text, None
    kind, _, key = text.partition(":")
    if kind != "label" or not key:
        raise ValueError(f"--by {text!r}: expected node, fleet or label:KEY")
    return kind, key


def group(
    labels: dict[str, dict[str, str]], pattern: str | None, wanted: dict[str, str], by: str
) -> Grouping:
    """The nodes whose name matches the glob `pattern` and which carry every `wanted` label,
    grouped `by` (see `parse_by`); a node without the grouping label groups under None."""
    kind, key = parse_by(by)
    chosen = [
        name
        for name, have in sorted(labels.items())
        if (pattern is None or fnmatchcase(name, pattern))
        and all(have.get(k) == v for k, v in wanted.items())
    ]
    groups: list[dict[str, str | None]] = []
    position: dict[tuple[tuple[str, str | None], ...], int] = {}
    group_of = {}
    for name in chosen:
        labelled: dict[str, str | None] = (
            {"node": name} if kind == "node" else {} if kind == "fleet" else
            {str(key): labels[name].get(str(key))}
        )  # fmt: skip
        at = position.setdefault(tuple(sorted(labelled.items(), key=str)), len(groups))
        if at == len(groups):
            groups.append(labelled)
        group_of[name] = at
    return Grouping(group_of, groups)
