"""Progress where the user is looking.

Every stage reports through one callable, `progress(message)`. A message that carries a count
("sagan/eyeglasses: it 250/5000 (2.6 it/s, eta 30.6 min) ...", "baseline/seed-0: step 300/1000 ...",
"augment smiling: shard 3/14 ...") is a *progress line*: `counted` reads the task it belongs to (the
text before the first colon), how much is done and of how much (the first "N/M" after it). Everything
else is an ordinary message.

Trainings run in spawned worker processes (flows/run.py). A worker writes its messages, one per line,
to a file in the run directory (`RunLayout.progress_log`: <run>/progress/<stage>/<job>.log, which a user
can also `tail -f`), and the process that waits for it forwards new lines, as they come, to its own
`progress`:

* `faceaug run` and the other long commands (`terminal()`): one live bar per counted task when the
  output is a terminal (tqdm), plain lines when it is not (a log file, CI);
* the Prefect flow (`PrefectProgress`): each line goes to the task run's log (the UI and the
  served process's log, which `scripts/main.sh` shows in the terminal while the flow runs), and
  each counted task keeps one live progress artifact on the task run up to date.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

Progress = Callable[[str], None]

# "<task>: ... <done>/<total> ...": the task is the text before the first colon, the count the first N/M after it
_COUNT = re.compile(r"^(?P<task>[^:]+):\s.*?\b(?P<done>\d+)/(?P<total>\d+)\b")


def counted(message: str) -> tuple[str, int, int] | None:
    """(task, done, total) of a progress line, or None for an ordinary message."""
    m = _COUNT.match(message.strip())
    if not m or int(m["total"]) <= 0:
        return None
    return m["task"].strip(), int(m["done"]), int(m["total"])


class ProgressFile:
    """The worker's side: append each message as a line of `path` (flushed at once)."""

    def __init__(self, path: str | Path, echo: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.echo = echo

    def __call__(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(message.replace("\n", " ") + "\n")
        if self.echo:
            print(message, flush=True)


class Follower:
    """The waiting side: forwards the lines appended to some progress files since it last looked."""

    def __init__(self, paths: Iterable[str | Path], sink: Progress):
        self.offsets = {Path(p): 0 for p in paths}
        self.sink = sink
        for path in self.offsets:  # a resumed job appends to its old file: only what comes now is news
            self.offsets[path] = path.stat().st_size if path.exists() else 0

    def poll(self) -> None:
        for path, offset in self.offsets.items():
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
            self.offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                if line:
                    self.sink(line)


def wait_following(futures: list, follower: Follower | None, interval: float = 1.0) -> None:
    """Wait until every future is done, forwarding progress lines meanwhile (and once more at the end)."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=interval, return_when=FIRST_EXCEPTION)
        if follower is not None:
            follower.poll()
        if any(f.exception() is not None for f in done):
            return


class TerminalProgress:
    """`progress` for a terminal: a live bar per counted task, ordinary messages printed above the bars.
    Not a terminal: every message as a plain line."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bars: dict[str, object] = {}

    def __call__(self, message: str) -> None:
        count = counted(message) if self.live else None
        if count is None:
            if self.live:
                from tqdm import tqdm

                tqdm.write(message, file=self.stream)
            else:
                print(message, file=self.stream, flush=True)
            return
        task, done, total = count
        bar = self._bar(task, total)
        bar.n = done
        bar.set_postfix_str(message.strip()[len(task) + 1:].strip()[:70], refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()
            del self.bars[task]

    def _bar(self, task: str, total: int):
        from tqdm import tqdm

        bar = self.bars.get(task)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = self.bars[task] = tqdm(total=total, desc=task, file=self.stream, leave=True, dynamic_ncols=True,
                                         bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining} {postfix}")
        return bar

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def terminal(stream=None) -> Progress:
    return TerminalProgress(stream)


class PrefectProgress:
    """`progress` inside a Prefect task run: every message to the run's log; each counted task one live
    progress artifact (created at its first count, updated at most every `every` seconds and at the end)."""

    def __init__(self, every: float = 5.0):
        from prefect import get_run_logger

        self.logger = get_run_logger()
        self.every = every
        self.artifacts: dict[str, tuple[object, float]] = {}

    def __call__(self, message: str) -> None:
        self.logger.info(message)
        count = counted(message)
        if count is None:
            return
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        task, done, total = count
        percent = 100.0 * min(done, total) / total
        description = f"{task} {done}/{total}"
        now = time.monotonic()
        if task not in self.artifacts:
            self.artifacts[task] = (create_progress_artifact(percent, description=description), now)
        elif now - self.artifacts[task][1] >= self.every or done >= total:
            update_progress_artifact(self.artifacts[task][0], percent, description=description)
            self.artifacts[task] = (self.artifacts[task][0], now)
