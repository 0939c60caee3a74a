"""The API's server as `dormouse run` starts it: a real socket, HTTPS from a PEM pair, and
clear errors for a taken port or half a TLS pair."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.http.server import HttpServer
from coordinator.settings import CoordinatorConfig, Http
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from shared.errors import ConfigError


def self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def fetch(url: str, context: ssl.SSLContext) -> dict:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return json.loads(response.read())


async def test_https_with_a_pem_pair(tmp_path):
    cert, key = self_signed(tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    http = Http(listen="127.0.0.1:0", tls_cert=cert, tls_key=key)
    settings = CoordinatorConfig(http=http)
    server = HttpServer(create_app(Api(engine, settings, SystemClock())), http)
    assert server.url.startswith("https://127.0.0.1:")
    serving = asyncio.create_task(server.serve())
    try:
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(50):
            try:
                document = await asyncio.to_thread(
                    fetch, f"{server.url}api/v1/openapi.json", context
                )
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert document["openapi"].startswith("3.1")
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(
                fetch, f"{server.url}api/v1/openapi.json", ssl.create_default_context()
            )
    finally:
        await server.stop()
        await asyncio.wait_for(serving, 10)
        engine.dispose()


def test_half_a_tls_pair_and_a_taken_port_are_refused(tmp_path):
    app = create_app(Api(create_engine("sqlite://"), CoordinatorConfig(), SystemClock()))
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        HttpServer(app, Http(listen="127.0.0.1:0", tls_cert=tmp_path / "cert.pem"))
    first = HttpServer(app, Http(listen="127.0.0.1:0"))
    port = first.sock.getsockname()[1]
    with pytest.raises(ConfigError, match=f"http.listen 127.0.0.1:{port}"):
        HttpServer(app, Http(listen=f"127.0.0.1:{port}"))
    first.sock.close()
