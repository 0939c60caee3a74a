"""Critical XID errors through an NVML event set, read without blocking.

XIDs are events, not levels: each sampling pass drains what arrived since the last (a wait
of 0 ms) and keeps, per GPU, how many were seen and the last code, until the agent restarts
(`shared.gpuhealth` reads them). A driver or GPU without event support leaves the counts
`None`, never an error.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from agent.logonce import LogOnce

log = logging.getLogger(__name__)
MAX_EVENTS_PER_PASS = 1024  # a storm of XIDs must not stall sampling


class XidWatcher:
    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._once = LogOnce(log)
        self._set: Any = None
        self._watched: set[str] = set()  # GPU UUIDs registered for XID events
        self.count: dict[str, int] = {}
        self.last: dict[str, int] = {}
        try:
            self._set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            log.info("no XID events: %s", exc)

    def watch(self, uuid: str, handle: Any) -> None:
        """Register the GPU for critical XID events (once; unsupported GPUs stay unwatched)."""
        if self._set is None or uuid in self._watched:
            return
        try:
            self._nvml.nvmlDeviceRegisterEvents(
                handle, self._nvml.nvmlEventTypeXidCriticalError, self._set
            )
        except self._nvml.NVMLError as exc:
            self._once.info(("xid", uuid), "GPU %s: no XID events (%s)", uuid, exc)
            return
        self._watched.add(uuid)
        self.count[uuid], self.last[uuid] = 0, 0

    def drain(self) -> None:
        """Take every event waiting now; return at once when there is none."""
        if not self._watched:
            return
        for _ in range(MAX_EVENTS_PER_PASS):
            try:
                event = self._nvml.nvmlEventSetWait_v2(self._set, 0)
            except self._nvml.NVMLError as exc:
                if exc.value != self._nvml.NVML_ERROR_TIMEOUT:
                    self._once.warning(("wait", exc.value), "XID events unreadable: %s", exc)
                return
            self._record(event)

    def _record(self, event: Any) -> None:
        try:
            uuid = self._nvml.nvmlDeviceGetUUID(event.device)
        except self._nvml.NVMLError:
            return
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        if uuid in self._watched:
            self.count[uuid] += 1
            self.last[uuid] = int(event.eventData)
            log.warning("GPU %s: XID %d", uuid, event.eventData)

    def metrics(self, uuid: str) -> dict[str, int | None]:
        return {"gpu_xid_count": self.count.get(uuid), "gpu_xid_last": self.last.get(uuid)}

    def close(self) -> None:
        if self._set is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlEventSetFree(self._set)
            self._set = None
