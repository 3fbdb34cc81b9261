"""Reading CelebA's three annotation files line by line, collecting every problem with its file and line.

    list_attr_celeba.txt      line 1: image count; line 2: the 40 attribute names; then "000001.jpg -1  1 ..."
                              (one or two spaces); attributes are located by name, -1/1 become 0/1
    identity_CelebA.txt       "000001.jpg 2880" (copies with a header line exist)
    list_eval_partition.txt   "000001.jpg 0"; 0/1/2 = train/valid/test

The well-formed common case takes a fast path (whole-file checks, string operations); anything
unusual falls through to the line-by-line checks that name the problem. `pipeline.celeba` puts the
three files together into records.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import stat
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.errors import Problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SUFFIXES_BOTH_CASES = IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES)
# How many names a problem about many images lists before "...".
FIRST_FEW = 5

_VALUE = {"1": 1, "-1": 0}  # the files' -1/1 -> the code's 0/1


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building ~10^6 acyclic objects.

    Without this, each 700 allocations trigger a collection that walks the growing
    containers again; parsing the real files takes about twice as long.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def few(items: list, n: int = FIRST_FEW) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def looks_like_image(name: str) -> bool:
    return name.endswith(_SUFFIXES_BOTH_CASES) or name.lower().endswith(IMAGE_SUFFIXES)


def text_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an annotation file, or None. Only os.stat is used: opening a FIFO
    (or a device) for reading would block or never end, so anything but a regular file is refused."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            return "is a symlink to a missing file (dangling symlink)"
        return f"file does not exist (expected {path})"
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"  # e.g. a symlink loop
    except ValueError:
        return "is not a valid file name (it contains a NUL byte)"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a FIFO, socket or device?)"
    return None


def is_dir_entry(entry: os.DirEntry) -> bool:
    """entry.is_dir(), with an entry that cannot be stat'ed (a symlink loop) counted as a file: reading it
    later reports the problem by name, under the bad-image policy, instead of a raw OSError here."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _read_lines(path: Path, problems: list[Problem]) -> list[str] | None:
    """The file's lines without trailing blank lines; None (and a problem) if unreadable."""
    why = text_file_problem(path)
    if why is not None:
        problems.append(Problem(path.name, None, why))
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        problems.append(Problem(path.name, None, f"cannot read file ({exc})"))
        return None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        problems.append(Problem(path.name, None, "file is empty"))
        return None
    return lines


def _count_problem(file: str, declared: int, rows: int) -> Problem:
    hint = " (truncated?)" if rows < declared else ""
    return Problem(file, 1, f"header says {declared} images, file has {rows} rows{hint}")


def parse_attributes(
    path: Path, problems: list[Problem]
) -> tuple[dict[str, tuple[int, ...]] | None, dict[str, int], tuple[str, ...] | None]:
    """-> (image id -> 40 values 0/1 in CELEBA_ATTRIBUTES order, image id -> line, names as in the file)."""
    file = path.name
    lines = _read_lines(path, problems)
    if lines is None:
        return None, {}, None
    declared = None
    try:
        declared = int(lines[0].strip())
    except ValueError:
        problems.append(Problem(file, 1, f"expected the image count, found {lines[0].strip()[:40]!r}"))
    if len(lines) < 2:
        problems.append(Problem(file, 2, "missing the line of attribute names"))
        return None, {}, None
    names = tuple(lines[1].split())
    expected = set(CELEBA_ATTRIBUTES)
    unknown = [n for n in names if n not in expected]
    missing = [n for n in CELEBA_ATTRIBUTES if n not in names]
    duplicated = sorted(n for n, c in Counter(names).items() if c > 1)
    if unknown or missing or duplicated:
        parts = []
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if duplicated:
            parts.append(f"repeated {', '.join(duplicated)}")
        problems.append(Problem(file, 2, f"expected the 40 CelebA attribute names, found {len(names)} names: {'; '.join(parts)}"))
        return None, {}, None
    column = [names.index(n) for n in CELEBA_ATTRIBUTES]
    n_attr = len(CELEBA_ATTRIBUTES)
    separators = " " * (n_attr - 1)
    line_of: dict[str, int] = {}
    good_ids: list[str] = []
    good_bits: list[str] = []  # per good row: n_attr characters '0'/'1' in file column order
    suffixes = _SUFFIXES_BOTH_CASES
    rows = 0
    for lineno, line in enumerate(lines[2:], start=3):
        # Fast path for a well-formed row (one or two spaces between values): string
        # operations only; anything unusual falls through to the token-by-token check below.
        head = line.split(None, 1)
        if not head:
            problems.append(Problem(file, lineno, "blank line"))
            continue
        rows += 1
        image_id = head[0]
        if not image_id.endswith(suffixes) and not looks_like_image(image_id):
            problems.append(Problem(file, lineno, f"expected an image file name first, found {image_id[:40]!r}"))
            continue
        if image_id in line_of:
            problems.append(Problem(file, lineno, f"duplicate image {image_id} (first listed on line {line_of[image_id]})"))
            continue
        line_of[image_id] = lineno
        rest = head[1] if len(head) == 2 else ""
        packed = rest.strip().replace("  ", " ").replace("-1", "0")
        bits = packed[::2]
        if packed[1::2] == separators and len(bits) == n_attr and not bits.strip("01") and "0" not in rest:
            good_ids.append(image_id)
            good_bits.append(bits)
            continue
        raw = rest.split()
        if len(raw) != n_attr:
            problems.append(Problem(file, lineno, f"expected {n_attr} attribute values, found {len(raw)}"))
            continue
        bad = [f"{names[k]}={v!r}" for k, v in enumerate(raw) if v not in _VALUE]
        if bad:
            problems.append(Problem(file, lineno, f"attribute values must be -1 or 1, found {', '.join(bad[:FIRST_FEW])}"))
            continue
        good_ids.append(image_id)
        good_bits.append("".join(str(_VALUE[v]) for v in raw))
    if declared is not None and declared != rows:
        problems.append(_count_problem(file, declared, rows))
    # '0'/'1' characters -> a rows x 40 array in CELEBA_ATTRIBUTES order -> one tuple per row
    table = (np.frombuffer("".join(good_bits).encode("ascii"), dtype=np.uint8).reshape(-1, n_attr) - ord("0"))[:, column]
    values_of = dict(zip(good_ids, map(tuple, table.tolist())))
    return values_of, line_of, names


def parse_two_columns(
    path: Path, problems: list[Problem], what: str, allowed: range
) -> tuple[dict[str, int], dict[str, int]]:
    """Read '<name>.jpg <int>' lines -> (image id -> value, image id -> line).

    The first line may be a header (e.g. 'image_id identity': its first word is not an image
    name) or a single image count, which is then checked against the rows.
    """
    file = path.name
    lines = _read_lines(path, problems)
    if lines is None:
        return {}, {}
    start, declared = 0, None
    first = lines[0].split()
    if len(first) == 1 and first[0].lstrip("-").isdigit() and first[0].isascii():  # "²".isdigit(), but int() refuses it
        start, declared = 1, int(first[0])
    elif first and not looks_like_image(first[0]):
        start = 1  # a header line such as "image_id identity"
    fast = _two_columns_fast(lines[start:], start, allowed)
    if fast is not None:
        values, line_of = fast
        if declared is not None and declared != len(values):
            problems.append(_count_problem(file, declared, len(values)))
        return values, line_of
    values = {}
    line_of = {}
    rows = 0
    suffixes = _SUFFIXES_BOTH_CASES
    for lineno, line in enumerate(lines[start:], start=start + 1):
        parts = line.split()
        if not parts:
            problems.append(Problem(file, lineno, "blank line"))
            continue
        rows += 1
        if len(parts) != 2 or not parts[0].endswith(suffixes):
            if len(parts) != 2 or not looks_like_image(parts[0]):
                problems.append(Problem(file, lineno, f"expected '<image>.jpg <{what}>', found {line.strip()[:60]!r}"))
                continue
        image_id, text = parts
        if image_id in line_of:
            problems.append(Problem(file, lineno, f"duplicate image {image_id} (first listed on line {line_of[image_id]})"))
            continue
        line_of[image_id] = lineno
        try:
            value = int(text)
        except ValueError:
            problems.append(Problem(file, lineno, f"{what} must be an integer, found {text[:20]!r}"))
            continue
        if value not in allowed:
            rule = ("0, 1 or 2 (train/valid/test)" if len(allowed) == 3 else "a non-negative integer")
            problems.append(Problem(file, lineno, f"{what} must be {rule}, found {text[:20]!r}"))
            continue
        values[image_id] = value
    if declared is not None and declared != rows:
        problems.append(_count_problem(file, declared, rows))
    return values, line_of


_BLANK = r"[ \t\r\f\v]"
_TWO_FIELD_LINES = re.compile(rf"(?:{_BLANK}*\S+{_BLANK}+\S+{_BLANK}*\n)*")


def _two_columns_fast(body: list[str], start: int, allowed: range) -> tuple[dict[str, int], dict[str, int]] | None:
    """Whole-file checks for the common, well-formed case; None sends the file to the line-by-line path."""
    text = "\n".join(body) + "\n"
    if not _TWO_FIELD_LINES.fullmatch(text):  # every line exactly two fields
        return None
    tokens = text.split()
    if len(tokens) != 2 * len(body):
        return None
    names, raw = tokens[0::2], tokens[1::2]
    if not all(name.endswith(_SUFFIXES_BOTH_CASES) for name in names) or len(set(names)) != len(names):
        return None
    try:
        numbers = list(map(int, raw))
    except ValueError:
        return None
    if numbers and (min(numbers) not in allowed or max(numbers) not in allowed):
        return None
    return dict(zip(names, numbers)), dict(zip(names, range(start + 1, start + 1 + len(names))))


def check_agreement(files: list[tuple[str, dict[str, int]]], problems: list[Problem]) -> None:
    """The three files must list the same image set; one problem per (file, other file) pair."""
    present = [(f, lines, lines.keys()) for f, lines in files if lines]
    if all(keys == present[0][2] for _, _, keys in present[1:]):
        return  # the common case: one comparison per file
    for f, lines, keys in present:
        for g, _, other in present:
            if f == g:
                continue
            extra = sorted(keys - other, key=lines.__getitem__)
            if extra:
                shown = ", ".join(f"{x} (line {lines[x]})" for x in extra[:FIRST_FEW])
                more = f", ... ({len(extra) - FIRST_FEW} more)" if len(extra) > FIRST_FEW else ""
                problems.append(Problem(f, lines[extra[0]], f"{len(extra)} images listed here are not in {g}: {shown}{more}"))


def check_image_dir(image_dir: Path, listed: set[str]) -> list[Problem]:
    """Every listed image must be a file in `image_dir` (one directory listing, no stat per image)."""
    label = image_dir.name + "/"
    if not image_dir.is_dir():
        return [Problem(label, None, f"directory {image_dir} does not exist")]
    files, dirs = set(), set()
    with os.scandir(image_dir) as it:
        for entry in it:
            (dirs if is_dir_entry(entry) else files).add(entry.name)
    problems = []
    if not any(looks_like_image(name) for name in files):
        problems.append(Problem(label, None, f"directory {image_dir} contains no images"))
    not_files = sorted(listed & dirs)
    if not_files:
        problems.append(Problem(label, None, f"{len(not_files)} listed images are directories, not image files: {few(not_files)}"))
    missing = sorted(listed - files - dirs)
    if missing and files:
        problems.append(Problem(label, None, f"{len(missing)} listed images are missing from {label}: {few(missing)}"))
    return problems
