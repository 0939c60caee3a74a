"""The systemd units, as templates: `dormouse-agent install` and `dormouse install` render
them with the absolute path of this installation's executable; `systemd/*.service` are the
same text rendered with `/usr/bin/env NAME`, so they verify and run as shipped wherever the
executable is on systemd's default PATH (a test keeps them equal and verifies both)."""

from __future__ import annotations

from pathlib import PurePosixPath
from string import Template

AGENT = Template("""\
# dormouse agent: samples this host, runs the jobs the coordinator assigns, sleeps when told.
# It runs as root: it suspends the host (systemctl suspend, rtcwake), starts jobs as
# job_user, and reads RAPL energy counters (root-only since Linux 5.10). Jobs are its
# children and inherit this sandbox, so only hardening that jobs can live with is on.
[Unit]
Description=dormouse agent (telemetry, jobs, sleep)
Documentation=https://github.com/dormouse/dormouse/blob/main/docs/agent.md
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=$exec run --config $config
Restart=on-failure
RestartSec=5s
# READY=1 after the first sample; WATCHDOG=1 from the sampling loop (every interval)
WatchdogSec=60s
# /var/lib/dormouse-agent: the spool and the job directories
StateDirectory=dormouse-agent
StateDirectoryMode=0750
# Stop (or restart) the agent only: jobs run under their own wrappers and survive an agent
# restart, which adopts them again (the default, control-group, would kill every job).
KillMode=process
TimeoutStopSec=30s
# Hardening jobs can live with: no writes to /usr, /boot, /efi or /etc; no kernel tunables,
# modules or logs; no new personalities or realtime. Left off on purpose: ProtectHome and
# PrivateTmp (jobs use home directories and /tmp), NoNewPrivileges (jobs may use setuid
# tools), ProtectClock and PrivateDevices (rtcwake needs /dev/rtc*, GPUs need /dev/nvidia*),
# CapabilityBoundingSet (setting job users and suspending need root's capabilities).
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectHostname=yes
LockPersonality=yes
RestrictRealtime=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
""")

COORDINATOR = Template("""\
# dormouse coordinator (`dormouse run`): ingest, placement, power. It needs the network,
# its state directory and the command key, nothing else, so it runs as a dynamic user in a
# tight sandbox. Wake commands (ipmitool, custom) run inside the same sandbox.
[Unit]
Description=dormouse coordinator (ingest, placement, power)
Documentation=https://github.com/dormouse/dormouse/blob/main/docs/coordinator.md
Wants=network-online.target
After=network-online.target postgresql.service mosquitto.service

[Service]
Type=notify
NotifyAccess=main
ExecStart=$exec run --config $config
Restart=on-failure
RestartSec=5s
# READY=1 once the store is open and the tasks run; WATCHDOG=1 from housekeeping (every 1 s)
WatchdogSec=60s
DynamicUser=yes
# /var/lib/dormouse: the SQLite store (when no PostgreSQL URL is configured)
StateDirectory=dormouse
Environment=DORMOUSE_DATA_DIR=%S/dormouse
# the HMAC key, readable by the dynamic user only through the credential
LoadCredential=command.key:/etc/dormouse/command.key
Environment=DORMOUSE_COMMAND_KEY_FILE=%d/command.key
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
""")


def render(template: Template, executable: str, config: str) -> str:
    return template.substitute(exec=executable, config=config)


HIDDEN = (  # (directories, the protection that hides them, what lets the service see them)
    (("/home", "/root", "/run/user"), "ProtectHome=yes", "ProtectHome=read-only"),
    (("/tmp", "/var/tmp"), "PrivateTmp=yes", "PrivateTmp=no"),  # noqa: S108 - paths to match
)


def relaxed(unit: str, executable: str) -> tuple[str, list[str]]:
    """`unit` with each protection that would hide `executable` from the service (a venv
    in a home directory or /tmp, as an install from a checkout makes) relaxed just enough,
    and a note for the operator on each."""
    path = PurePosixPath(executable)
    notes = []
    for where, strict, loose in HIDDEN:
        under = next((d for d in where if path.is_relative_to(d)), None)
        if under is None or strict not in unit:
            continue
        why = f"# {loose}: ExecStart is under {under}, which {strict} would hide"
        unit = unit.replace(strict, f"{why}\n{loose}")
        notes.append(
            f"{executable} is under {under}: the unit says {loose} (install dormouse "
            f"under /opt or /usr/local to keep {strict})"
        )
    return unit, notes


def shipped(name: str) -> str:
    """ExecStart's program in the unit files shipped in the source tree."""
    return f"/usr/bin/env {name}"
