"""Per-job energy: each job its own GPUs' counters and its CPU share of the host."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from shared.jobenergy import JobShare, charge, node_energy
from shared.messages import GpuSample, Sample


def gpu(index: int, energy_j: float | None, power_w: float | None = 300.0) -> GpuSample:
    return GpuSample(
        index=index,
        uuid=f"GPU-{index}",
        metrics={"gpu_energy_j": energy_j, "gpu_power_w": power_w},
    )


def sample(ts: float, gpus: list[GpuSample], **metrics: float) -> Sample:
    return Sample(ts=ts, metrics=dict(metrics), gpus=tuple(gpus))


def test_two_jobs_on_an_eight_gpu_node_each_pay_their_own_gpus_and_cpu_share():
    before = sample(
        0.0,
        [gpu(i, 1000.0 * i) for i in range(8)],
        rapl_package_energy_j=5000.0,
        rapl_dram_energy_j=100.0,
    )
    after = sample(
        10.0,
        [gpu(i, 1000.0 * i + 3000.0 + 100 * i) for i in range(8)],  # GPU i: 3000 + 100 i J
        rapl_package_energy_j=6000.0,  # host: 1000 + 200 J over 10 s
        rapl_dram_energy_j=300.0,
    )
    jobs = {"a": JobShare(gpus=(0, 1), cpus=16), "b": JobShare(gpus=(5,), cpus=8)}
    charged = charge(before, after, jobs, node_cpus=64)
    assert charged["a"] == 3000 + 3100 + 1200 * 16 / 64
    assert charged["b"] == 3500 + 1200 * 8 / 64
    assert node_energy(before, after) == 8 * 3000 + 100 * 28 + 1200
    assert sum(charged.values()) < node_energy(before, after)  # idle GPUs stay the node's


def test_missing_counters_fall_back_to_power_times_time():
    before = sample(0.0, [gpu(0, None, 200.0)], power_w=500.0)
    after = sample(2.0, [gpu(0, None, 300.0)], power_w=500.0)  # host = 500 - 300 W
    assert charge(before, after, {"a": JobShare(gpus=(0,), cpus=4)}, node_cpus=4) == {
        "a": 250.0 * 2 + 200.0 * 2
    }


def test_a_counter_that_went_backwards_is_not_a_negative_charge():
    before = sample(0.0, [gpu(0, 9000.0, 100.0)])
    after = sample(1.0, [gpu(0, 10.0, 100.0)])  # the driver reloaded
    assert charge(before, after, {"a": JobShare(gpus=(0,), cpus=0)}, node_cpus=8) == {"a": 100.0}


def test_a_replaced_gpu_or_no_time_charges_nothing():
    before = sample(0.0, [gpu(0, 0.0)])
    swapped = Sample(ts=1.0, metrics={}, gpus=(GpuSample(index=0, uuid="GPU-new", metrics={}),))
    assert charge(before, swapped, {"a": JobShare(gpus=(0,), cpus=0)}, node_cpus=8) == {"a": 0.0}
    assert charge(before, before, {"a": JobShare(gpus=(0,), cpus=8)}, node_cpus=8) == {"a": 0.0}


counters = st.none() | st.floats(0, 1e6)
watts = st.none() | st.floats(0, 1e4)


@st.composite
def intervals(draw):
    count = draw(st.integers(0, 8))
    before = [gpu(i, draw(counters), draw(watts)) for i in range(count)]
    after = [gpu(i, draw(counters), draw(watts)) for i in range(count)]
    host = {k: draw(counters) for k in ("rapl_package_energy_j", "rapl_dram_energy_j")}
    host |= {k: draw(watts) for k in ("rapl_power_w", "power_w")}
    later = {k: draw(counters if k.endswith("_j") else watts) for k in host}
    seconds = draw(st.floats(0, 60))
    first = sample(0.0, before, **{k: v for k, v in host.items() if v is not None})
    second = sample(seconds, after, **{k: v for k, v in later.items() if v is not None})
    jobs = {
        f"j{n}": JobShare(
            gpus=tuple(draw(st.sets(st.integers(0, max(count - 1, 0)), max_size=count))),
            cpus=draw(st.integers(0, 64)),
        )
        for n in range(draw(st.integers(0, 5)))
    }
    return first, second, jobs, draw(st.integers(1, 64))


@given(intervals())
def test_the_jobs_never_add_up_to_more_than_the_node(case):
    before, after, jobs, node_cpus = case
    charged = charge(before, after, jobs, node_cpus)
    assert charged.keys() == jobs.keys()
    assert all(v >= 0 for v in charged.values())
    total = node_energy(before, after)
    assert sum(charged.values()) <= total or math.isclose(sum(charged.values()), total)
