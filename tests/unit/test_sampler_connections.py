from __future__ import annotations

from agent.samplers.connections import ConnectionsSampler, count_established
from tests.unit.samplers_support import host_tree


def test_counts_established_on_service_ports_over_ipv4_and_ipv6(tmp_path):
    proc, _ = host_tree(tmp_path)
    # port 8080 (0x1F90): two established IPv4 server-side rows and one IPv6; the client-side
    # row (local port 0xC350) and the listening row do not count.
    assert ConnectionsSampler([8080], proc).sample().metrics == {"connections": 3}
    assert ConnectionsSampler([8080, 443], proc).sample().metrics == {"connections": 4}
    assert ConnectionsSampler([22], proc).sample().metrics == {"connections": 0}  # TIME_WAIT


def test_no_ports_configured_counts_zero(tmp_path):
    sampler = ConnectionsSampler([], tmp_path)
    assert sampler.sample().metrics == {"connections": 0}
    assert sampler.check().ok


def test_unreadable_tables_give_no_data(tmp_path):
    sampler = ConnectionsSampler([80], tmp_path)
    assert sampler.sample().metrics == {"connections": None}
    assert not sampler.check().ok


def test_header_only():
    assert count_established("sl local rem st\n", frozenset({80})) == 0
