"""Waking a sleeping node, the I/O edge: a Wake-on-LAN magic packet (the `wakeonlan`
package), an IPMI command template or a custom command template.

The method is the first of the node's advertised `wake_methods` the coordinator can use:
`wol` needs a MAC in the node's hello, `ipmi` and `command` need their template configured.
Templates are split like a shell line but run without a shell; `{node}`, `{hostname}` and
`{mac}` are filled in.
"""

from __future__ import annotations

import asyncio
import shlex

import wakeonlan

from coordinator.settings import Power
from shared.messages import Hello

COMMAND_TIMEOUT_S = 30.0


def wake_method(hello: Hello | None, config: Power, attempt: int = 0) -> str | None:
    """The method that would wake the node, or None when there is no way. `attempt` counts
    the tries of one wake: each takes the next usable method, round the list."""
    if hello is None:
        return None
    usable = {
        "wol": bool(hello.macs),
        "ipmi": bool(config.ipmi_command),
        "command": bool(config.wake_command),
    }
    methods = [m for m in hello.wake_methods if usable.get(m)]
    return methods[attempt % len(methods)] if methods else None


def fill(template: str, hello: Hello) -> list[str]:
    mac = hello.macs[0] if hello.macs else ""
    return [
        part.format(node=hello.node, hostname=hello.hostname, mac=mac)
        for part in shlex.split(template)
    ]


async def wake(hello: Hello, config: Power, attempt: int = 0) -> str:
    """Send the wake; returns what was done. Raises OSError when it could not be sent."""
    method = wake_method(hello, config, attempt)
    if method is None:
        raise OSError(f"no usable wake method among {list(hello.wake_methods)}")
    if method == "wol":
        await asyncio.to_thread(
            wakeonlan.wake, *hello.macs, host=config.wol_broadcast, port=config.wol_port
        )
        return (
            f"Wake-on-LAN to {', '.join(hello.macs)} via {config.wol_broadcast}:{config.wol_port}"
        )
    template = config.ipmi_command if method == "ipmi" else config.wake_command
    return await run_command(fill(template, hello), method)


async def run_command(argv: list[str], method: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        raise OSError(f"{method} command {argv[0]} took over {COMMAND_TIMEOUT_S:g}s") from None
    if process.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise OSError(f"{method} command {argv[0]} exited {process.returncode}: {last[0]}")
    return f"{method} command {shlex.join(argv)}"
