"""The API's body and token checks, alone: what is refused and why, and a fuzz of the job
decoder (any JSON gives a job or an Invalid naming a field, nothing else)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.jobstate import JobRecord
from coordinator.http import auth, bodies
from coordinator.http.bodies import Invalid
from coordinator.placement.balance import Strategy

NOW = 1_800_000_000.0


def test_a_full_job_body_becomes_the_job_submit_makes():
    body = {
        "argv": ["python", "train.py"],
        "cpus": 4,
        "mem": "8G",
        "gpus": 2,
        "runtime_s": "30m",
        "deadline_s": 7200,
        "priority": 3,
        "name": "train",
        "labels": {"rack": "r1"},
        "requeue": True,
        "account": "vision",
    }
    job = bodies.job(body, "abc", NOW, "alice")
    assert job == JobRecord(
        id="abc",
        argv=("python", "train.py"),
        submitted_at=NOW,
        name="train",
        cpus=4,
        mem_bytes=8 * 10**9,
        gpus=2,
        labels={"rack": "r1"},
        runtime_s=1800.0,
        deadline=NOW + 7200,
        priority=3,
        requeue=True,
        account="vision",
        user="alice",
    )


def test_an_account_is_the_bodys_else_the_default_given():
    assert bodies.job({"argv": ["true"]}, "a", NOW, "bob", "bob").account == "bob"
    assert bodies.job({"argv": ["true"], "account": "nlp"}, "a", NOW, "bob", "bob").account == "nlp"
    with pytest.raises(bodies.Invalid) as refused:
        bodies.job({"argv": ["true"], "account": " x"}, "a", NOW)
    assert refused.value.field == "account"


def test_defaults_are_submits_defaults():
    job = bodies.job({"argv": ["true"]}, "abc", NOW)
    assert (job.cpus, job.gpus, job.mem_bytes, job.runtime_s, job.deadline) == (
        1,
        0,
        0,
        3600.0,
        None,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"argv": ["x"], "gpu": 1}, "gpu"),
        ({"argv": ["x"], "cpus": True}, "cpus"),
        ({"argv": ["x"], "runtime_s": None}, "runtime_s"),
        ({"argv": ["x"], "deadline_s": -1}, "deadline_s"),
        ({"argv": ["x"], "mem": "lots"}, "mem"),
        ({"argv": []}, "argv"),
        ([], "body"),
    ],
)
def test_refusals_name_the_field(body, field):
    with pytest.raises(Invalid) as refused:
        bodies.job(body, "abc", NOW)
    assert refused.value.field == field


def test_power_and_pick_bodies():
    assert bodies.power(None) == bodies.PowerAsk(force=False, wait_s=0.0)
    assert bodies.power({"force": True, "wait_s": 5}).force
    with pytest.raises(Invalid, match="wait_s"):
        bodies.power({"wait_s": 600})
    ask = bodies.pick({"gpus": 1, "strategy": "affinity", "key": "alice"})
    assert (ask.request.gpus, ask.strategy, ask.key) == (1, Strategy.AFFINITY, "alice")
    with pytest.raises(Invalid, match="key"):
        bodies.pick({"strategy": "affinity"})
    with pytest.raises(Invalid, match="strategy"):
        bodies.pick({"strategy": "fastest"})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
FIELDS = sorted(bodies.JOB_FIELDS)


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, min_size=1)))
def test_any_json_is_a_job_or_a_refusal_naming_a_field(body):
    try:
        job: JobRecord | Invalid = bodies.job(body, "abc", NOW)
    except Invalid as refused:
        job = refused
    if isinstance(job, Invalid):
        assert job.field in {*FIELDS, "body"} or job.field in body
    else:
        assert job.argv
        assert job.runtime_s > 0


def lookup(token: str) -> str | None:
    return {"r": "read", "w": "write"}.get(token)


@pytest.mark.parametrize(
    ("header", "needed", "status"),
    [
        (None, "read", 401),
        ("Basic abc", "read", 401),
        ("Bearer ", "read", 401),
        ("Bearer nope", "read", 401),
        ("Bearer r", "write", 403),
        ("Bearer r", "read", None),
        ("bearer w", "write", None),
        ("Bearer w", "read", None),
        (None, None, None),
    ],
)
def test_token_checks(header, needed, status):
    refusal = auth.check(header, needed, lookup, anonymous_read=False)
    assert (refusal.status if refusal else None) == status


def test_anonymous_read_opens_reads_not_writes():
    assert auth.check(None, "read", lookup, anonymous_read=True) is None
    refusal = auth.check(None, "write", lookup, anonymous_read=True)
    assert refusal is not None
    assert refusal.status == 401
