"""A stop that sticks, for the daemons' long-running loops.

On Python 3.11, `asyncio.wait_for` (aiomqtt publishes and subscribes through it) can swallow
a cancellation that lands in the same loop tick as the future it waits for completes
(cpython#86296; 3.12 rewrote `wait_for`). A loop that swallowed one goes on forever, and the
task group that cancelled it never exits: a daemon that ignores SIGTERM. `Task.cancelling()`
cannot tell (3.11's TaskGroup can leave it raised after a child fails), so the daemon sets
its own flag before cancelling. A top-level loop ends when `requested`; a loop inside a
task group calls `check()`, whose `Stopped` (an error, unlike a cancellation) makes the group
cancel its siblings too, and the loop that owns the group catches it.
"""

from __future__ import annotations


class Stopped(Exception):
    """The daemon is stopping: raised by `Stopping.check`, caught where the group is owned."""


class Stopping:
    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        """Call before cancelling the tasks: a cancellation lost on the way is raised again
        at the loop's next turn."""
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise Stopped
