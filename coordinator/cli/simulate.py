"""`dormouse simulate`: replay a trace through the placement and power policy, per policy."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from coordinator.cli.common import fail, load
from coordinator.power.defer import DeferPolicy
from coordinator.power.policy import PowerPolicy
from coordinator.power.tariff import Rate
from coordinator.services import tariffs
from coordinator.services.tariffs import prices
from coordinator.settings import Power
from coordinator.sim.engine import POLICIES, Outcome, Simulation
from coordinator.sim.fleet import NodeType, default_type, parse_fleet
from coordinator.sim.metrics import HoldBound, Summary, hold_bound, summarise
from coordinator.sim.trace import TraceJob, TraceOptions, parse_trace
from shared.config import describe
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors, table_console
from shared.errors import ConfigError

REFERENCE = "always-on"
NO_HOLDS = "dormouse-no-holds"


def register(root: typer.Typer) -> None:
    root.command("simulate", rich_help_panel="Reports")(simulate)


def simulate(
    trace: Annotated[
        Path,
        typer.Option(
            "--trace", help="a trace: dormouse or ElasticFlow CSV, or sacct --parsable2 output"
        ),
    ],
    nodes: Annotated[int, typer.Option("--nodes", help="fleet size (without --fleet)")] = 16,
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", help="GPUs on each node (without --fleet)")
    ] = 8,
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", help="a TOML file of node types (\\[\\[nodes]] tables)"),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", metavar="POLICY", help=f"one of {', '.join(POLICIES)}"),
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="every policy side by side")] = False,
    deadline_factor: Annotated[
        float | None, typer.Option("--deadline-factor", help="deadline = submit + K x runtime")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep", metavar="KNOB=V1,V2", help="a \\[power] knob and values: idle_after=60,300"
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="resume jitter and wake failures")] = 0,
    clear_after: Annotated[
        float, typer.Option("--clear-after", help="seconds until an operator clears a failed node")
    ] = 3600.0,
    tariff: Annotated[
        Path | None,
        typer.Option(
            "--tariff", metavar="FILE", help="price per kWh: hour,price or time,price CSV"
        ),
    ] = None,
    carbon: Annotated[
        Path | None,
        typer.Option("--carbon", metavar="FILE", help="gCO2 per kWh: hour,gco2_per_kwh CSV"),
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    r"""Replay a job trace through dormouse's own placement and power policy.

    Energy is priced at --tariff (else `\[cost] tariff`, else the flat `price_kwh`); trace
    times are seconds from a Monday 00:00. `dormouse` holds jobs with slack for a cheaper
    window (`\[cost] defer_by`); `dormouse-flat` is the fixed policy (no holds, the fixed
    resume timeout)."""
    names = list(POLICIES) if compare else policy or ["dormouse"]
    if unknown := [n for n in names if n not in POLICIES]:
        fail(f"--policy {unknown[0]!r}: expected one of {', '.join(POLICIES)}")
    if deadline_factor is not None and deadline_factor <= 0:
        fail("--deadline-factor must be more than 0")
    if nodes < 1 or gpus_per_node < 0:
        fail("--nodes must be 1 or more and --gpus-per-node 0 or more")
    settings = load(config)
    power = settings.power
    with reported_errors("dormouse"):
        intensity = tariffs.carbon(settings.cost, carbon)
        rates = Rates(
            prices(settings.cost, tariff).on_trace(),
            intensity.on_trace() if intensity else None,
            settings.cost.defer_policy(),
        )
        jobs = read_trace(trace, deadline_factor)
        kinds = (
            parse_fleet(fleet.read_text(), str(fleet))
            if fleet
            else [default_type(nodes, gpus_per_node)]
        )
        variants = sweep_variants(sweep, power) if sweep else {}
    runs = {n: power.policy() for n in names if not variants or n != "dormouse"}
    runs.setdefault(REFERENCE, power.policy())
    if "dormouse" in runs:  # its holds are measured against its twin holding nothing
        runs.setdefault(NO_HOLDS, power.policy())
    runs |= {f"dormouse {label}": knobs for label, knobs in variants.items()}
    outcomes = run_all(jobs, kinds, runs, seed, clear_after, rates, show_progress=not as_json)
    end = max(o.end for o in outcomes.values())
    summaries = {name: summarise(o, end) for name, o in outcomes.items()}
    shown = [n for n in summaries if n in names or n.startswith("dormouse ")]
    largest = max(kinds, key=lambda k: (k.gpus, k.cpus))
    bounds = Bounds(
        hold_bound(jobs, rates.tariff, largest),
        hold_bound(jobs, rates.carbon, largest, scale=1e-3) if rates.carbon else None,
    )
    report(summaries, shown, bounds, as_json=as_json)


@dataclass(frozen=True, slots=True)
class Rates:
    tariff: Rate
    carbon: Rate | None
    defer: DeferPolicy


def read_trace(path: Path, deadline_factor: float | None) -> list[TraceJob]:
    try:
        with path.open(newline="") as lines:
            jobs = parse_trace(lines, TraceOptions(deadline_factor=deadline_factor), str(path))
    except OSError as exc:
        raise ConfigError(f"--trace {path}: {exc.strerror}") from None
    if not jobs:
        raise ConfigError(f"--trace {path}: no jobs")
    return jobs


def sweep_variants(text: str, power: Power) -> dict[str, PowerPolicy]:
    """`idle_after=60,300,900` -> one policy per value, through the config's own parser."""
    key, sep, values = text.partition("=")
    knobs = {f.name: f for f in fields(Power)}
    if not sep or key not in knobs or not values.strip():
        keys = ", ".join(k for k, _, _ in describe(power))
        raise ConfigError(f"--sweep {text!r}: expected KEY=V1,V2 with a [power] key ({keys})")
    parse = knobs[key].metadata["parse"]
    variants = {}
    for value in (v.strip() for v in values.split(",") if v.strip()):
        try:
            variants[f"{key}={value}"] = replace(power, **{key: parse(value)}).policy()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--sweep {key}={value}: {exc}") from None
    return variants


def run_all(
    jobs: list[TraceJob],
    kinds: list[NodeType],
    runs: dict[str, PowerPolicy],
    seed: int,
    clear_after: float,
    rates: Rates,
    *,
    show_progress: bool,
) -> dict[str, Outcome]:
    outcomes = {}
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("simulating", total=len(jobs) * len(runs))
        for name, knobs in runs.items():
            kind = POLICIES[name.split(" ")[0]]
            simulation = Simulation(
                jobs,
                kinds,
                kind,
                knobs,
                seed=seed,
                clear_after_s=clear_after,
                tariff=rates.tariff,
                carbon=rates.carbon,
                defer=rates.defer,
            )
            progress.update(task, description=name)
            outcomes[name] = simulation.run(lambda n: progress.advance(task, n))
    return outcomes


@dataclass(frozen=True, slots=True)
class Bounds:
    """The most holds could take off the jobs' own energy price (and carbon)
    (`metrics.hold_bound`): the trace's, the same for every policy."""

    price: HoldBound
    carbon: HoldBound | None


def figures(
    summary: Summary, reference: Summary, twin: Summary | None, bounds: Bounds
) -> dict[str, Any]:
    """`twin`: the same policy holding nothing, for a policy that holds jobs (else None)."""
    values = asdict(summary)
    values["kwh_vs_always_on"] = (
        summary.energy_kwh / reference.energy_kwh if reference.energy_kwh else None
    )
    values["saved_vs_always_on_pct"] = (
        100 * (1 - values["kwh_vs_always_on"]) if values["kwh_vs_always_on"] is not None else None
    )
    values["vs_lower_bound"] = (
        summary.energy_kwh / summary.lower_bound_kwh if summary.lower_bound_kwh else None
    )
    cost, peer = summary.energy_cost, reference.energy_cost
    values["cost_saved_vs_always_on_pct"] = 100 * (1 - cost / peer) if cost and peer else None
    values["hold_bound_pct"] = bounds.price.pct
    values["hold_bound_cost"] = bounds.price.room
    values["hold_captured_pct"] = bounds.price.captured_pct(
        summary.energy_cost, twin.energy_cost if twin else None
    )
    co2 = values["co2_kg"]
    if co2 is None:
        del values["co2_kg"]
    else:
        values["carbon_kg"] = co2  # the carbon figures' name; co2_kg kept as it was
        values["carbon_bound_pct"] = bounds.carbon.pct if bounds.carbon else None
        values["carbon_captured_pct"] = (
            bounds.carbon.captured_pct(co2, twin.co2_kg if twin else None)
            if bounds.carbon
            else None
        )
    return values


def report(
    summaries: dict[str, Summary], shown: list[str], bounds: Bounds, *, as_json: bool
) -> None:
    reference = summaries[REFERENCE]
    table = {
        name: figures(
            summaries[name],
            reference,
            summaries.get(NO_HOLDS) if POLICIES[name.split(" ")[0]].defer else None,
            bounds,
        )
        for name in shown
    }
    if as_json:
        typer.echo(json.dumps({"policies": table}, indent=2))
        return
    out = Table(title="simulation (energy to a common end: the latest run's last job)")
    out.add_column("figure", no_wrap=True)
    for name in shown:  # in a narrow terminal, fold: a cut figure is a wrong figure
        out.add_column(name, justify="right", overflow="fold")
    for key in next(iter(table.values())):
        out.add_row(key, *(_cell(table[name][key]) for name in shown))
    table_console().print(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        return text.removeprefix("-") if float(text.replace(",", "")) == 0 else text
    return f"{value:,}"
