"""`dormouse-agent`'s entry point: `run`, the daemon every server keeps running, starts here
lean; every other command is the typer CLI (`agent.cli`).

The daemon's footprint is paid on every server of the fleet, so `run` parses its six flags
with argparse (typer, click and rich stay out: ~8 MB), hashes with CPython's own SHA-256
(`_builtin_hashes`), imports what paho only might use when it is used (`_deferred`) and,
for a plain `mqtt://` broker, keeps `ssl` out (`_without_ssl`). Its flags are the typer
command's, and a bad one is one line and exit 2 as there (`tests/unit/test_agent_main.py`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path
from typing import NoReturn

PROG = "dormouse-agent"
RUN_FLAGS = ("broker", "node", "interval", "publish_interval", "spool_dir")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit 2, as the typer commands answer a bad argument."""
        self.exit(2, f"{PROG} run: error: {message} (see {PROG} run --help)\n")


def _parser() -> _Parser:
    parser = _Parser(prog=f"{PROG} run", add_help=False)
    parser.add_argument("--config", "-c", type=Path, default=None)
    for flag in RUN_FLAGS:
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None)
    return parser


def _deferred(name: str) -> None:
    """Import the module `name` on first use instead of now: a stand-in that, at the first
    attribute asked of it, imports the real module (which replaces it) and answers from it.
    For `urllib.request` (with http.client and the email package, ~5 MB): paho imports it at
    start and reads it only to find an MQTT proxy when PySocks is installed."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")

    def load(attr: str) -> object:
        del sys.modules[name]
        return getattr(importlib.import_module(name), attr)

    stand_in = types.ModuleType(name, f"{name}: imported at its first use")
    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in
    setattr(importlib.import_module(parent), child, stand_in)


def _without_ssl() -> None:
    """Plain MQTT needs no TLS, so `ssl` (libssl, its error tables) is never loaded.

    asyncio imports `ssl` only if it can (CPython supports builds without it), so it is
    marked unimportable first. paho and aiomqtt import it unconditionally but use it only
    for TLS connections: they get a stand-in holding the exception classes paho names in
    its `except` clauses (never raised by a plain socket). After them, `ssl` stays
    unimportable: nothing in a plain-MQTT agent may load it (a test checks)."""
    sys.modules["ssl"] = None  # type: ignore[assignment]
    import asyncio  # noqa: F401, PLC0415 - imported now, while `ssl` cannot be

    stand_in = types.ModuleType("ssl", "not loaded: this agent's broker is plain mqtt://")
    for name in ("SSLError", "SSLWantReadError", "SSLWantWriteError", "CertificateError"):
        setattr(stand_in, name, type(name, (OSError,), {}))
    sys.modules["ssl"] = stand_in
    try:
        import aiomqtt  # noqa: F401, PLC0415 - with paho, against the stand-in
    finally:
        sys.modules["ssl"] = None  # type: ignore[assignment]


def _builtin_hashes() -> None:
    """hashlib without OpenSSL's `_hashlib` (libcrypto, ~3.5 MB resident): the agent hashes
    only command signatures (HMAC-SHA256, a few per hour), and CPython's own SHA-256, which
    hashlib and hmac fall back to, does that in microseconds. paho imports hashlib at start,
    for websockets the agent never opens. Must run before anything imports hashlib."""
    if "hashlib" not in sys.modules:
        sys.modules["_hashlib"] = None  # type: ignore[assignment]


def run(argv: list[str]) -> int:
    """`dormouse-agent run`: load the config (defaults, file, environment, flags), then
    serve until stopped. A bad config or flag is one line and exit 2."""
    _builtin_hashes()
    _deferred("urllib.request")
    from agent.settings import DEFAULT_CONFIG_PATH, AgentConfig  # noqa: PLC0415
    from shared.config import config_path, load_config  # noqa: PLC0415
    from shared.edge import logs  # noqa: PLC0415
    from shared.errors import DormouseError  # noqa: PLC0415

    args = vars(_parser().parse_args(argv))
    flag = args.pop("config")
    try:
        if flag is not None and flag.is_dir():
            raise DormouseError(f"--config {flag}: is a directory, not a TOML file")
        settings = load_config(
            AgentConfig, path=config_path(flag, DEFAULT_CONFIG_PATH), overrides=args
        )
    except DormouseError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if not settings.broker.tls:
        _without_ssl()
    import asyncio  # noqa: PLC0415 - after the ssl decision

    from agent.service import serve  # noqa: PLC0415

    try:
        asyncio.run(serve(settings))
    except DormouseError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["run"] and not {"--help", "-h"} & set(argv):
        sys.exit(run(argv[1:]))
    from agent.cli import main as cli_main  # noqa: PLC0415 - the full CLI only when asked

    cli_main()
