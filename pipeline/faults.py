"""Fault injection for the kill-and-resume tests: SIGKILL the whole run at a named point.

    FACEAUG_KILL_AT=augment-shard-encoded:2   kill the run the 2nd time any process reaches that point

Points (where a crash is most likely to lose or duplicate work):
    augment-shard-encoded   an augmentation shard is edited and encoded, not yet committed
    verifier-step           a verifier optimiser step is done (and checkpointed, if it was due)

The count is shared by every process of the run through a file next to it (FACEAUG_KILL_COUNTER),
and the kill goes to the process group, so the parent run dies with its workers, as it would under
`kill -9 -<pgid>`. Without FACEAUG_KILL_AT set, `point()` costs one dictionary lookup.
"""

from __future__ import annotations

import fcntl
import os
import signal

ENV = "FACEAUG_KILL_AT"


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec or not spec.startswith(name + ":") and spec != name:
        return
    nth = int(spec.split(":", 1)[1]) if ":" in spec else 1
    counter = os.environ.get("FACEAUG_KILL_COUNTER", f"/tmp/faceaug-kill-{os.getpgid(0)}")
    with open(counter, "a+") as f:  # count hits across processes; the lock keeps counts exact
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("x")
        f.flush()
        f.seek(0)
        hits = len(f.read())
    if hits == nth:
        os.killpg(os.getpgid(0), signal.SIGKILL)
