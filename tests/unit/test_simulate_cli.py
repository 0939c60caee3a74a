"""`dormouse simulate` in process: JSON shape, compare, sweep, and bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from coordinator.main import app

runner = CliRunner()
TRACE = "submit_s,runtime_s,gpus,cpus,mem_gb,deadline_s\n" + "".join(
    f"{i * 600},{300 + 60 * (i % 3)},{1 + i % 2},2,8,\n" for i in range(12)
)
KEYS = {
    "jobs",
    "completed",
    "deadline_hits_pct",
    "mean_wait_s",
    "p95_wait_s",
    "energy_kwh",
    "lower_bound_kwh",
    "sleeps",
    "wakes",
    "max_toggles_per_node_hour",
    "kwh_vs_always_on",
}


@pytest.fixture
def trace(tmp_path, monkeypatch):
    monkeypatch.delenv("DORMOUSE_CONFIG", raising=False)
    path = tmp_path / "t.csv"
    path.write_text(TRACE)
    return str(path)


def invoke(*args: str):
    return runner.invoke(app, ["simulate", *args])


def test_json_compare_gives_every_policy_with_the_figures(trace):
    result = invoke(
        "--trace", trace, "--nodes", "4", "--compare", "--deadline-factor", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    policies = json.loads(result.output)["policies"]
    assert set(policies) == {
        "dormouse",
        "dormouse-no-holds",
        "dormouse-flat",
        "always-on",
        "always-on-fifo",
        "round-robin",
    }
    for figures in policies.values():
        assert set(figures) >= KEYS | {"deadline_hits_gpu_h_pct", "hold_bound_pct"}
        assert figures["jobs"] == figures["completed"] == 12
        assert figures["hold_bound_pct"] == 0.0  # a flat price: holding saves nothing
        assert figures["hold_captured_pct"] is None
        assert "carbon_kg" not in figures  # no --carbon
    assert policies["always-on"]["kwh_vs_always_on"] == 1.0
    assert policies["dormouse"]["energy_kwh"] < policies["always-on"]["energy_kwh"]
    assert policies["dormouse"]["sleeps"] > 0


def test_sweep_reports_each_value(trace, monkeypatch):
    monkeypatch.setenv("DORMOUSE_POWER_MIN_AWAKE_TIME", "1s")
    result = invoke("--trace", trace, "--nodes", "4", "--sweep", "idle_after=60,20m", "--json")
    assert result.exit_code == 0, result.output
    policies = json.loads(result.output)["policies"]
    assert set(policies) == {"dormouse idle_after=60", "dormouse idle_after=20m"}
    quick, slow = policies["dormouse idle_after=60"], policies["dormouse idle_after=20m"]
    assert quick["energy_kwh"] < slow["energy_kwh"]  # sleeping sooner saves more here


def test_a_table_for_people(trace):
    result = invoke("--trace", trace, "--nodes", "2", "--policy", "round-robin")
    assert result.exit_code == 0, result.output
    assert "round-robin" in result.output
    assert "energy_kwh" in result.output


def test_the_compare_table_piped_is_never_cut_nor_negative_zero(trace, monkeypatch):
    """Piped (CliRunner is no terminal) with COLUMNS unset: every policy's name and figure
    whole, as `| grep` needs them; a figure that rounds to zero says 0, not -0.000."""
    monkeypatch.delenv("COLUMNS", raising=False)
    result = invoke("--trace", trace, "--nodes", "4", "--compare", "--deadline-factor", "3")
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for name in ("dormouse-flat", "always-on-fifo", "round-robin"):
        assert name in result.output
    assert "-0.000" not in result.output
    assert max(len(line) for line in result.output.splitlines()) > 80  # one line per figure


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--policy", "magic"], "--policy 'magic'"),
        (["--deadline-factor", "0"], "--deadline-factor must be more than 0"),
        (["--nodes", "0"], "--nodes must be 1 or more"),
        (["--sweep", "idle_after"], "expected KEY=V1,V2"),
        (["--sweep", "idle_after=soon"], "--sweep idle_after=soon"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(trace, args, reason):
    result = invoke("--trace", trace, *args)
    assert result.exit_code == 2
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_trace_says_so(tmp_path):
    result = invoke("--trace", str(tmp_path / "none.csv"))
    assert result.exit_code == 2
    assert "No such file" in result.output


def test_holds_are_reported_against_their_bound_and_carbon_beside_kwh(trace, tmp_path):
    """With prices and carbon high in the first hour (when the trace's jobs arrive) and
    deadlines that leave room to wait, `dormouse` reports the bound and how much of it its
    holds took, for price and for carbon; its twin holding nothing is shown beside it."""
    price = tmp_path / "price.csv"
    price.write_text("hour,price\n" + "".join(f"{h},{0.3 if h < 1 else 0.1}\n" for h in range(24)))
    carbon = tmp_path / "carbon.csv"
    carbon.write_text(
        "hour,gco2_per_kwh\n" + "".join(f"{h},{400 if h < 1 else 100}\n" for h in range(24))
    )
    result = invoke(
        "--trace", trace, "--nodes", "4", "--deadline-factor", "20", "--tariff", str(price),
        "--carbon", str(carbon), "--policy", "dormouse", "--policy", "dormouse-no-holds", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    policies = json.loads(result.output)["policies"]
    ours, twin = policies["dormouse"], policies["dormouse-no-holds"]
    assert ours["hold_bound_pct"] == twin["hold_bound_pct"] > 0
    assert ours["carbon_bound_pct"] > 0
    cut = twin["energy_cost"] - ours["energy_cost"]  # in money, as the bound's room is
    assert ours["hold_bound_cost"] == twin["hold_bound_cost"] > 0
    assert ours["hold_captured_pct"] == pytest.approx(100 * cut / ours["hold_bound_cost"])
    assert twin["hold_captured_pct"] is None  # it holds nothing
    assert ours["carbon_kg"] > 0
    assert "carbon_captured_pct" in ours
