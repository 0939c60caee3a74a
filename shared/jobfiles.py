"""The names in one job's directory on a node. The agent, its job wrapper and `dormouse demo`
(which stops the jobs its agents left running) all read them, so they are declared once here.

    spec.json     what to run (written by the agent before the wrapper starts)
    wrapper.pid   the wrapper's process id, also its process group (written by the agent)
    pid           the job's process id, also its process group (written by the wrapper)
    stdout/stderr its output, capped at the configured size
    stop_reason   why the agent signalled it (cancelled, runtime limit), if it did
    result.json   exit code and end time (written by the wrapper, atomically, at the end)
    reported      the agent published the result and the broker acknowledged it
"""

from __future__ import annotations

SPEC = "spec.json"
WRAPPER_PID = "wrapper.pid"
PID = "pid"
STOP = "stop_reason"
RESULT = "result.json"
REPORTED = "reported"
