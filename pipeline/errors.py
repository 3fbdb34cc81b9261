"""Problems found in a dataset tree, each named by file and line, and the error that carries them.

The readers (`pipeline.celeba`, `pipeline.lfw`) collect every problem they find instead of
stopping at the first, so one `faceaug data check` run lists everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

# How many problems a DatasetError's message lists before "... and N more".
MAX_LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: the file (relative to the dataset root), the line if any, what."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}


class DatasetError(ValueError):
    """A dataset tree that cannot be used; `problems` holds every problem found."""

    def __init__(self, problems: list[Problem], what: str = "dataset"):
        self.problems = list(problems)
        self.what = what
        n = len(self.problems)
        head = f"{what}: {n} problem{'s' if n != 1 else ''} found"
        listed = [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            listed.append(f"  ... and {n - MAX_LISTED} more")
        super().__init__("\n".join([head + ":", *listed]) if listed else head)
