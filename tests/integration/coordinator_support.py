"""A coordinator process, and reads of what it stored, for the integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared.config import BrokerUrl
from tests.integration.agent_support import KEY


@dataclass
class CoordinatorProcess:
    db_url: str
    broker: BrokerUrl
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    prelude: str = ""  # Python run in the process before the CLI (a fault at an edge)

    def __post_init__(self) -> None:
        self.client_id = f"coord-{uuid.uuid4().hex[:8]}"
        (self.workdir / "key").write_text(KEY)
        (self.workdir / "key").chmod(0o600)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DORMOUSE_")}
        return (
            env
            | {
                "DORMOUSE_DB": self.db_url,
                "DORMOUSE_BROKER": f"mqtt://{self.broker.host}:{self.broker.port}",
                "DORMOUSE_CLIENT_ID": self.client_id,
                "DORMOUSE_COMMAND_KEY_FILE": str(self.workdir / "key"),
                "DORMOUSE_DATA_DIR": str(self.workdir),
                "DORMOUSE_OFFLINE_AFTER": "3s",
                "DORMOUSE_RESEND_RETRY": "3s",
                "DORMOUSE_LOG_LEVEL": "debug",
            }
            | self.extra_env
        )

    def start(self) -> None:
        log = (self.workdir / "coordinator.log").open("ab")
        command = [sys.executable, "-m", "coordinator", "run"]
        if self.prelude:
            start = "import sys; from coordinator.main import main; sys.argv[0] = 'dormouse'"
            command = [sys.executable, "-c", f"{self.prelude}\n{start}; main()", "run"]
        self.process = subprocess.Popen(command, env=self.env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not store_ready(self.db_url):  # migrated, or say why not
            assert self.alive(), self.log()
            assert time.monotonic() < deadline, f"coordinator not ready: {self.log()}"
            time.sleep(0.2)
        time.sleep(1.0)  # its MQTT subscription follows the store by a moment

    def kill(self, signum: int = 9) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=15)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return (self.workdir / "coordinator.log").read_text(errors="replace")

    def cli(self, *args: str) -> Any:
        """`dormouse ARGS --json` against this coordinator's store, parsed."""
        command, *rest = args
        result = self.run_cli(command, "--json", *rest)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coordinator", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stats(self) -> dict[str, float]:
        return {k: f["value"] for k, f in self.cli("status")["figures"].items()}


def serving_metrics(
    db_url: str, broker: BrokerUrl, workdir: Path, port: int, **env: str
) -> CoordinatorProcess:
    """A coordinator (not started) with /metrics on `port` and fast placement passes."""
    extra = {
        "DORMOUSE_METRICS_LISTEN": f"127.0.0.1:{port}",
        "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.2s",
        **env,
    }
    return CoordinatorProcess(db_url=db_url, broker=broker, workdir=workdir, extra_env=extra)


def store_ready(db_url: str) -> bool:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text("SELECT version_num FROM alembic_version")).all())
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def stored_seqs(db_url: str, node: str) -> list[int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT seq_first, seq_last FROM raw_chunks WHERE node = :n ORDER BY seq_first"
                ),
                {"n": node},
            )
            return [seq for first, last in rows for seq in range(int(first), int(last) + 1)]
    except sa.exc.SQLAlchemyError:
        return []  # not created yet
    finally:
        engine.dispose()


def stored_jobs(db_url: str) -> dict[str, dict[str, Any]]:
    """Every job row, by id, read directly (quicker than a CLI process per job)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM jobs")).mappings().all()
            return {r["id"]: dict(r) for r in rows}
    finally:
        engine.dispose()
