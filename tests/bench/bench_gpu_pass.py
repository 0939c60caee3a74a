"""What one agent sampling pass costs on real GPUs (NVML), and which NVML call costs it.

    .venv/bin/python tests/bench/bench_gpu_pass.py [--passes 500]

Needs an NVIDIA GPU and driver; elsewhere it says so and exits 0. Prints the CPU and wall
time of the agent's own `GpuSampler.sample()` and of a whole pass over every sampler the
agent builds (`take_sample`), then the CPU time of each metric's NVML read on GPU 0. The peer
is the same pass on a host without GPUs (docs/benchmarks.md, "Lean agent": 8 fake GPUs with
every field).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import pynvml

from agent.samplers import build_samplers
from agent.samplers.gpu import GpuSampler, field_readers
from agent.sampling import take_sample


def timed(name: str, fn: Callable[[], object], n: int) -> None:
    fn()
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu0) / n
    walls.sort()
    print(
        f"{name:28s} wall mean {1e3 * statistics.mean(walls):.3f} ms  "
        f"p50 {1e3 * walls[n // 2]:.3f}  p99 {1e3 * walls[int(n * 0.99)]:.3f}  "
        f"cpu {1e3 * cpu:.3f} ms/pass  (n={n})"
    )


def per_call(n: int) -> None:
    """CPU time of each metric's read on GPU 0 (NotSupported counts as a read)."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    for metric, read in field_readers(pynvml).items():
        started = time.process_time()
        for _ in range(n):
            with contextlib.suppress(pynvml.NVMLError):
                read(handle)
        print(f"  {metric:30s} {1e3 * (time.process_time() - started) / n:.3f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=500)
    args = parser.parse_args()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        print(f"NVML unavailable ({exc}): nothing to measure on this host")
        return
    names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
             for i in range(pynvml.nvmlDeviceGetCount())]  # fmt: skip
    print(f"GPUs: {names}; driver {pynvml.nvmlSystemGetDriverVersion()}")
    gpu = GpuSampler()
    timed(f"gpu sampler ({len(names)} GPUs)", gpu.sample, args.passes)
    every = build_samplers(service_ports=(), jobs_running=lambda: 0)
    timed("every sampler, take_sample", lambda: take_sample(every, time.time()), args.passes)
    print("per metric, GPU 0:")
    per_call(max(50, args.passes // 2))
    gpu.close()


if __name__ == "__main__":
    main()
