"""Placement, pure: queue order → filter → deadline check → score → select (DESIGN.md).

Every stage is a small function over frozen snapshots; `schedule` and `pick` compose them.
No I/O and no clock reads: `now` is an argument.
"""
