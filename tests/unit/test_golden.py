"""Golden byte vectors for protocol v1, so that a format change is always deliberate.

The msgpack layer is pinned exactly. The LZ4 layer is pinned by decoding: a stored frame must
still decode to the same message, but compressed output may differ across liblz4 versions
without any change to the format. After a deliberate protocol change, regenerate with
`python -m tests.unit.test_golden` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.codec import KIND_OF, decode, encode, pack_map
from shared.messages import WireMessage
from tests import factories

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden_v1.json"


def named_messages() -> dict[str, WireMessage]:
    return {f"{i:02d}-{type(m).__name__}": m for i, m in enumerate(factories.every_message())}


def golden() -> dict[str, dict[str, str]]:
    return json.loads(GOLDEN.read_text())


def test_every_message_kind_has_a_vector():
    assert set(golden()) == set(named_messages())
    kinds = {type(m) for m in named_messages().values()}
    assert kinds == set(KIND_OF)


@pytest.mark.parametrize("name", sorted(named_messages()))
def test_msgpack_bytes_are_unchanged(name):
    assert pack_map(named_messages()[name]).hex() == golden()[name]["msgpack"]


@pytest.mark.parametrize("name", sorted(named_messages()))
def test_stored_frame_still_decodes(name):
    message = named_messages()[name]
    frame = bytes.fromhex(golden()[name]["frame"])
    assert decode(frame, KIND_OF[type(message)], message.node) == message


def regenerate() -> None:
    vectors = {
        name: {"msgpack": pack_map(m).hex(), "frame": encode(m).hex()}
        for name, m in named_messages().items()
    }
    GOLDEN.write_text(json.dumps(vectors, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    regenerate()
