"""The shipped Prometheus alert rules pass `promtool check rules`, and `promtool test rules`
shows each alert firing on the series the coordinator's /metrics exports (and not firing on
a fleet within its limits)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).parents[2] / "configs" / "prometheus" / "dormouse-rules.yml"

CASES = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'dormouse_wasted_gpus{{account="nlp"}}'
        values: '0 0 4x10'
      - series: 'dormouse_wasted_gpus{{account="vision"}}'
        values: '0x12'
      - series: 'dormouse_account_spent{{account="nlp"}}'
        values: '85x12'
      - series: 'dormouse_account_budget{{account="nlp"}}'
        values: '100x12'
      - series: 'dormouse_account_spent{{account="vision"}}'
        values: '120x12'
      - series: 'dormouse_account_budget{{account="vision"}}'
        values: '100x12'
      - series: 'dormouse_account_spent{{account="ops"}}'
        values: '50x12'
      - series: 'dormouse_account_budget{{account="ops"}}'
        values: '0x12'
      - series: 'dormouse_power_events_total{{kind="failed"}}'
        values: '0 0 0 1 1 1 1 1 1 1 1 1 1'
      - series: 'dormouse_ingest_lag_seconds{{quantile="0.99"}}'
        values: '2 2 90x10'
    alert_rule_test:
      - eval_time: 4m
        alertname: DormouseWastedGpus
        exp_alerts: []
      - eval_time: 10m
        alertname: DormouseWastedGpus
        exp_alerts:
          - exp_labels: {{severity: warning, account: nlp}}
            exp_annotations:
              summary: "account nlp holds 4 GPUs it leaves idle"
              description: "Running jobs of nlp keep their GPUs under [cost] waste_util_pct
                past waste_after; `dormouse jobs --wasteful --account nlp` lists them."
      - eval_time: 5m
        alertname: DormouseBudgetNearlySpent
        exp_alerts:
          - exp_labels: {{severity: warning, account: nlp}}
            exp_annotations:
              summary: "account nlp has spent 80 % of its budget"
              description: "`dormouse report --by account` shows who spent what this period."
      - eval_time: 5m
        alertname: DormouseBudgetSpent
        exp_alerts:
          - exp_labels: {{severity: critical, account: vision}}
            exp_annotations:
              summary: "account vision is over its budget"
              description: "[cost] over_budget decides what happens to its new jobs (warn,
                hold, deprioritise)."
      - eval_time: 5m
        alertname: DormouseWakeFailed
        exp_alerts:
          - exp_labels: {{severity: warning, kind: failed}}
            exp_annotations:
              summary: "a node did not come back from a wake"
              description: "`dormouse power-events` says which node and why."
      - eval_time: 3m
        alertname: DormouseIngestLagging
        exp_alerts: []
"""


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        assert os.environ.get("CI") != "true", "promtool missing: .ci/run installs prometheus"
        pytest.skip("promtool not installed (apt install prometheus)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_file_passes_promtool_check_rules():
    checked = run("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_each_alert_fires_on_the_coordinators_series(tmp_path):
    cases = tmp_path / "cases.yml"
    cases.write_text(CASES.format(rules=RULES))
    tested = run("test", "rules", str(cases))
    assert tested.returncode == 0, tested.stdout + tested.stderr
