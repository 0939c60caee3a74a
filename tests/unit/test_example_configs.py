"""The shipped example configs load, and mention every key, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import AgentConfig
from coordinator.settings import CoordinatorConfig
from shared.config import describe, load_config

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.mark.parametrize(
    ("name", "schema"), [("agent.toml", AgentConfig), ("coordinator.toml", CoordinatorConfig)]
)
def test_example_config_loads_and_documents_every_key(name, schema):
    path = CONFIGS / name
    load_config(schema, path=path, env={})
    text = path.read_text()
    for key, _, _ in describe(load_config(schema, env={})):
        assert f"{key} = " in text, f"{name} does not document {key}"
