"""Every registered sampler emits only declared metrics, of the declared type and scope."""

from __future__ import annotations

import pytest

from agent.samplers import build_samplers
from agent.sampling import node_power_w, take_sample
from shared.messages import GpuSample
from shared.metrics import BY_NAME, Scope
from tests.unit.samplers_support import FakeGpu, FakeNvml, host_tree


@pytest.fixture(params=[False, True], ids=["host", "simulated"])
def simulated(request):
    return request.param


@pytest.fixture
def samplers(tmp_path, simulated):
    proc, sys = host_tree(tmp_path)
    return build_samplers(
        service_ports=(8080,),
        jobs_running=lambda: 2,
        proc_root=proc,
        sys_root=sys,
        nvml=FakeNvml([FakeGpu("GPU-a")]),
        simulated_load=simulated,
    )


def test_registry_names_are_unique(samplers, simulated):
    names = [s.name for s in samplers]
    assert len(names) == len(set(names)) == (5 if simulated else 7)  # no host GPUs, no RAPL


def test_each_sampler_keeps_the_contract(samplers):
    for sampler in samplers:
        keeps_the_contract(sampler)


def keeps_the_contract(sampler):
    reading = sampler.sample()
    for name, value in reading.metrics.items():
        metric = BY_NAME[name]
        assert metric.scope is Scope.NODE
        if value is None:
            continue
        values = value if metric.vector else (value,)
        for v in values:
            assert isinstance(v, int if metric.integer else int | float)
            assert metric.lo <= v <= metric.hi
    for gpu in reading.gpus:
        assert all(BY_NAME[name].scope is Scope.GPU for name in gpu.metrics)
    check = sampler.check()
    assert check.name == sampler.name
    assert check.detail


def test_a_pass_merges_every_sampler_into_a_valid_sample(samplers, simulated):
    sample = take_sample(samplers, 1.7e9)  # Sample validates every value on construction
    assert sample.metrics["jobs_running"] == 2
    assert sample.metrics["connections"] == 3
    if simulated:  # the host's GPU and RAPL are not this node's
        assert (sample.gpus, sample.metrics.get("power_w")) == ((), None)
    else:  # RAPL measured 0 W over the pass (counters unchanged) plus the GPU's 350 W
        assert len(sample.gpus) == 1
        assert sample.metrics["power_w"] == pytest.approx(350.0)


def test_node_power_adds_what_is_measured():
    gpu = GpuSample(index=0, uuid="u", metrics={"gpu_power_w": 300.0})
    unknown = GpuSample(index=1, uuid="v", metrics={"gpu_power_w": None})
    assert node_power_w(50.0, [gpu, unknown]) == 350.0
    assert node_power_w(None, [gpu]) == 300.0
    assert node_power_w(None, [unknown]) is None
