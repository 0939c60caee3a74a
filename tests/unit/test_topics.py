from __future__ import annotations

import pytest

from shared.errors import TopicError
from shared.topics import Kind, Topic, parse_topic, subscription, topic


def test_build_and_parse_round_trip():
    for kind in Kind:
        text = topic("gpu-01", kind)
        assert text == f"dormouse/v1/nodes/gpu-01/{kind.value}"
        assert parse_topic(text) == Topic("gpu-01", kind)


@pytest.mark.parametrize("node", ["", "a/b", "a+b", "#", "x" * 65, "é", "..", ".", "a b"])
def test_bad_node_names_are_refused(node):
    with pytest.raises(TopicError, match="bad node name"):
        topic(node, Kind.HELLO)


@pytest.mark.parametrize("node", ["a", "gpu-01", "node_7.rack-2", "x" * 64])
def test_good_node_names(node):
    assert parse_topic(topic(node, "status")).node == node


@pytest.mark.parametrize(
    "text",
    [
        "dormouse/v2/nodes/n1/hello",
        "dormouse/v1/nodes/n1/bogus",
        "dormouse/v1/nodes/n1",
        "dormouse/v1/nodes/n1/hello/extra",
        "x/dormouse/v1/nodes/n1/hello",
        "",
        "dormouse/v1/nodes/a+b/hello",
    ],
)
def test_foreign_topics_are_refused(text):
    with pytest.raises(TopicError):
        parse_topic(text)


def test_unknown_kind_is_refused():
    with pytest.raises(TopicError, match="unknown topic kind"):
        topic("n1", "secrets")


def test_subscriptions():
    assert subscription(Kind.TELEMETRY) == "dormouse/v1/nodes/+/telemetry"
    assert subscription(Kind.CMD, node="n1") == "dormouse/v1/nodes/n1/cmd"
    assert subscription(Kind.TELEMETRY, group="ingest") == (
        "$share/ingest/dormouse/v1/nodes/+/telemetry"
    )
    with pytest.raises(TopicError, match="bad node name"):
        subscription(Kind.TELEMETRY, group="a/b")  # a group is one topic level
