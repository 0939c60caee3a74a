"""What the coordinator logs while the database is away: a line when it goes, a reminder a
minute, a line when it is back (it used to be a line per pass, once a second)."""

from __future__ import annotations

from coordinator.core.ratelimit import Outage


def test_a_long_outage_is_three_lines_not_one_per_attempt():
    outage = Outage("placement/power passes", remind_s=60.0)
    said = [outage.failed("OperationalError", float(t)) for t in range(125)]
    lines = [line for line in said if line is not None]
    assert lines == [
        "placement/power passes postponed: OperationalError; retrying quietly until it works",
        "placement/power passes still postponed after 60s (61 attempts): OperationalError",
        "placement/power passes still postponed after 120s (121 attempts): OperationalError",
    ]
    assert outage.succeeded(125.0) == "placement/power passes running again after 125s"
    assert outage.succeeded(126.0) is None
    assert outage.failed("OperationalError", 200.0) is not None  # a new outage is said again
