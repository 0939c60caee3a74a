"""The shipped example configs load, and mention every key, so they cannot drift."""

from __future__ import annotations

import re
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
        section, _, leaf = key.rpartition(".")
        documented = re.search(rf"^(# )?{re.escape(leaf)} = ", text, re.MULTILINE)
        assert documented, f"{name} does not document {key}"
        if section:
            assert f"[{section}]" in text, f"{name} has no [{section}] table"
