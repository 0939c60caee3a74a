"""Valid example messages of every kind, shared by the unit, fuzz and integration tests."""

from __future__ import annotations

from shared.messages import (
    CancelJob,
    Command,
    CommandBody,
    Event,
    GpuInfo,
    GpuSample,
    Hello,
    Resend,
    RunJob,
    Sample,
    Sleep,
    Status,
    TelemetryBatch,
    WireMessage,
)

TS = 1_763_884_800.0  # 2025-11-23T08:00:00Z


def hello(node: str = "gpu-01") -> Hello:
    return Hello(
        node=node,
        ts=TS,
        hostname=f"{node}.example",
        agent_version="0.1.0",
        cpus=32,
        mem_total_bytes=256 * 2**30,
        macs=("3c:ec:ef:00:11:22",),
        gpus=(GpuInfo(index=0, uuid="GPU-0b8c", name="NVIDIA H100", mem_total_bytes=80 * 2**30),),
        labels={"rack": "r1"},
        sleep_methods=("systemctl-suspend",),
        wake_methods=("wol",),
    )


def sample(ts: float = TS, cpu: float = 12.5) -> Sample:
    return Sample(
        ts=ts,
        metrics={
            "cpu_util_pct": cpu,
            "cpu_core_util_pct": (10.0, 15.0),
            "mem_used_bytes": 2**33,
            "mem_total_bytes": 2**38,
            "power_w": None,
            "jobs_running": 1,
        },
        gpus=(
            GpuSample(
                index=0,
                uuid="GPU-0b8c",
                metrics={"gpu_util_pct": 99.0, "gpu_energy_j": 1234.5, "gpu_temp_c": None},
            ),
        ),
    )


def telemetry(
    node: str = "gpu-01", seq_first: int = 100, count: int = 2, ts: float = TS
) -> TelemetryBatch:
    """`count` samples a second apart from `ts` (pass time.time() to a live coordinator,
    which refuses samples older than its raw retention)."""
    samples = tuple(sample(ts + i, 10.0 + i % 80) for i in range(count))
    return TelemetryBatch(node=node, seq_first=seq_first, samples=samples)


def status(node: str = "gpu-01", state: str = "online") -> Status:
    return Status(node=node, ts=TS, state=state)


def event(node: str = "gpu-01") -> Event:
    return Event(
        node=node,
        ts=TS,
        kind="job_finished",
        job_id="j-42",
        exit_code=0,
        runtime_s=61.5,
        energy_j=9000.0,
    )


def command(node: str = "gpu-01", body: CommandBody | None = None, cid: str = "c1") -> Command:
    return Command(
        id=cid,
        node=node,
        issued_at=TS,
        expires_at=TS + 60,
        body=body or RunJob(job_id="j-42", argv=("python", "train.py"), gpus=(0,)),
    )


BODIES = (
    RunJob(job_id="j-1", argv=("sleep", "1")),
    CancelJob(job_id="j-1"),
    Sleep(reason="idle 5m"),
    Resend(from_seq=10, to_seq=20),
)


def every_message() -> list[WireMessage]:
    return [hello(), telemetry(), status(), event(), *(command(body=b) for b in BODIES)]
