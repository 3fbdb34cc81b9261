"""The aligned CelebA tree: annotation files, validation, identity-based splits.

Layout under a root directory (the official "Align&Cropped" release):

    img_align_celeba/000001.jpg ...   178x218 JPEGs
    list_attr_celeba.txt              line 1: image count; line 2: the 40 attribute names;
                                      then "000001.jpg -1  1 ..." (one or two spaces)
    identity_CelebA.txt               "000001.jpg 2880" (copies with a header line exist)
    list_eval_partition.txt           "000001.jpg 0"; 0/1/2 = train/valid/test

Attributes are located by name (any column order), and -1/1 become 0/1. Every violation is
collected as a `Problem` naming file and line; `CelebA.open` raises them all at once in a
`DatasetError`, `CelebA.scan` returns them (for `faceaug data check`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, TypeVar

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.errors import DatasetError, Problem
from pipeline.images import BadImageError, ImageReport, load_rgb, preprocess

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
ALIGNED_SHAPE = (218, 178)  # height, width of the aligned images
PARTITION_NAMES = {0: "train", 1: "valid", 2: "test"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SUFFIXES_BOTH_CASES = IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES)
# How many names a problem about many images lists before "...".
FIRST_FEW = 5

_VALUE = {"1": 1, "-1": 0}  # the files' -1/1 -> the code's 0/1


@dataclass(frozen=True)
class CelebARecord:
    image_id: str  # "000001.jpg"
    identity: int
    partition: int  # 0/1/2 = train/valid/test (the official partition)
    attributes: tuple[int, ...]  # 40 values 0/1 in CELEBA_ATTRIBUTES order


class CelebA:
    """A validated CelebA tree: records sorted by image id."""

    def __init__(self, root: str | Path, records: list[CelebARecord], attribute_names: tuple[str, ...] = CELEBA_ATTRIBUTES):
        self.root = Path(root)
        self.records = sorted(records, key=lambda r: r.image_id)
        self.attribute_names = attribute_names
        self._by_id = {r.image_id: r for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"CelebA({str(self.root)!r}, {len(self.records)} images, {len(self.identities())} identities)"

    @classmethod
    def open(cls, root: str | Path, *, check_files: bool = True) -> "CelebA":
        """Read and validate the tree; raises DatasetError listing every problem found."""
        celeba, problems = cls.scan(root, check_files=check_files)
        if problems or celeba is None:
            raise DatasetError(problems, f"CelebA tree {root}")
        return celeba

    @classmethod
    def scan(cls, root: str | Path, *, check_files: bool = True) -> tuple["CelebA | None", list[Problem]]:
        """Read the tree, collecting problems instead of raising.

        Returns the records that are consistent across the three files (None when the
        attribute file cannot be read at all) and the problems. With `check_files`, the
        image directory is listed once and every listed image must be a file in it.
        """
        root = Path(root)
        if not root.is_dir():
            return None, [Problem(str(root), None, f"directory {root} does not exist")]
        with _gc_paused():
            return cls._scan(root, check_files)

    @classmethod
    def _scan(cls, root: Path, check_files: bool) -> tuple["CelebA | None", list[Problem]]:
        problems: list[Problem] = []
        attrs, attr_lines, names = _parse_attributes(root / ATTR_FILE, problems)
        identities, id_lines = _parse_two_columns(root / IDENTITY_FILE, problems, "identity", range(0, 2**62))
        partitions, part_lines = _parse_two_columns(root / PARTITION_FILE, problems, "partition", range(3))
        _check_agreement(
            [(ATTR_FILE, attr_lines), (IDENTITY_FILE, id_lines), (PARTITION_FILE, part_lines)], problems
        )
        if check_files:
            listed = set(attr_lines) | set(id_lines) | set(part_lines)
            problems.extend(check_image_dir(root / IMAGE_DIR, listed))
        if attrs is None:
            return None, problems
        records = [
            CelebARecord(image_id, identities[image_id], partitions[image_id], values)
            for image_id, values in attrs.items()
            if image_id in identities and image_id in partitions
        ]
        return cls(root, records, names or CELEBA_ATTRIBUTES), problems

    def image_path(self, image_id: str) -> Path:
        return self.root / IMAGE_DIR / image_id

    def record(self, image_id: str) -> CelebARecord:
        return self._by_id[image_id]

    def identities(self) -> dict[int, tuple[str, ...]]:
        """identity -> its image ids (sorted), identities in ascending order."""
        groups: dict[int, list[str]] = defaultdict(list)
        for r in self.records:
            groups[r.identity].append(r.image_id)
        return {i: tuple(groups[i]) for i in sorted(groups)}

    def load_image(self, image_id: str, size: int, report: ImageReport | None = None) -> np.ndarray:
        """Decode one image and apply the paper's preprocessing: size x size x 3 uint8.

        The crop is the centred square: 178x178 of the 178x218 aligned image (rows
        20..197), then a resize to `size` -- what the StarGAN and public SaGAN code do.
        Bad files raise BadImageError naming the file (see `load_many` for a policy); an
        image of another size is still centre-cropped and resized, and counted in `report`.
        """
        arr = load_rgb(self.image_path(image_id), report)
        if arr.shape[:2] != ALIGNED_SHAPE and report is not None:
            report.note(f"{arr.shape[1]}x{arr.shape[0]} (not 178x218) cropped and resized")
        return preprocess(arr, size)


# ----------------------------------------------------------------------------- loading policy
T = TypeVar("T")


def load_many(
    items: Iterable[T],
    loader: Callable[[T, ImageReport], np.ndarray],
    *,
    on_bad: Literal["error", "skip"],
    report: ImageReport,
) -> list[tuple[T, np.ndarray]]:
    """Load each item with `loader(item, report)`, applying the bad-image policy.

    on_bad="error": the first bad image raises its BadImageError (which names the file).
    on_bad="skip": it is recorded in `report.skipped` as (path, reason) and left out; the
    caller reads the count from `report.skipped`. Nothing is dropped without a record.
    Returns the (item, image) pairs that loaded, in input order.
    """
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad must be 'error' or 'skip', not {on_bad!r}")
    loaded = []
    for item in items:
        try:
            loaded.append((item, loader(item, report)))
        except BadImageError as exc:
            if on_bad == "error":
                raise
            report.skipped.append((exc.path, exc.reason))
    return loaded


# ----------------------------------------------------------------------------- splits
@dataclass(frozen=True, kw_only=True)
class Split:
    """Image ids per part, with the identities of each part (parts must share none)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    valid: tuple[str, ...] = ()
    train_identities: frozenset[int]
    test_identities: frozenset[int]
    valid_identities: frozenset[int] = frozenset()

    def check_disjoint(self) -> None:
        """Raise DatasetError if an identity (or an image) is in two parts."""
        parts = [("train", self.train, self.train_identities), ("valid", self.valid, self.valid_identities),
                 ("test", self.test, self.test_identities)]
        problems = []
        for i, (a, a_images, a_ids) in enumerate(parts):
            for b, b_images, b_ids in parts[i + 1 :]:
                shared = sorted(a_ids & b_ids)
                if shared:
                    problems.append(Problem(f"split {self.name}", None,
                                            f"{len(shared)} identities are in both {a} and {b}: {_few(shared)}"))
                shared_images = sorted(set(a_images) & set(b_images))
                if shared_images:
                    problems.append(Problem(f"split {self.name}", None,
                                            f"{len(shared_images)} images are in both {a} and {b}: {_few(shared_images)}"))
        if problems:
            raise DatasetError(problems, f"split {self.name!r}")


def paper_split(celeba: CelebA, test_identities: int = 2000) -> Split:
    """The SaGAN paper's split: the identities with the most images train, the rest test.

    Identities are ordered by image count (descending), ties broken by identity number
    (ascending); the first n - `test_identities` train, the last `test_identities` test.
    On the real files this gives 8,177 train identities with 191,649 images and 2,000
    test identities with 10,950 images; the boundary falls inside the identities with 10
    images, so the tie-break decides which of them test but not the totals.
    """
    groups = celeba.identities()
    n = len(groups)
    if not 1 <= test_identities < n:
        raise DatasetError([Problem(IDENTITY_FILE, None,
                                    f"the paper split needs 1 <= test_identities < {n} (the number of identities); "
                                    f"got {test_identities}")], "paper split")
    order = sorted(groups, key=lambda i: (-len(groups[i]), i))
    train_ids, test_ids = order[: n - test_identities], order[n - test_identities :]
    return Split(
        name="paper",
        train=tuple(sorted(x for i in train_ids for x in groups[i])),
        test=tuple(sorted(x for i in test_ids for x in groups[i])),
        train_identities=frozenset(train_ids), test_identities=frozenset(test_ids),
    )


def official_split(celeba: CelebA) -> Split:
    """list_eval_partition.txt's split: 0/1/2 -> train/valid/test.

    The official partitions share no identity; a tree where one does raises DatasetError.
    """
    parts: dict[int, list[str]] = {0: [], 1: [], 2: []}
    ids: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    seen_in: dict[int, set[int]] = defaultdict(set)
    for r in celeba.records:
        parts[r.partition].append(r.image_id)
        ids[r.partition].add(r.identity)
        seen_in[r.identity].add(r.partition)
    mixed = sorted(i for i, p in seen_in.items() if len(p) > 1)
    if mixed:
        shown = ", ".join(f"{i} ({'/'.join(PARTITION_NAMES[p] for p in sorted(seen_in[i]))})" for i in mixed[:FIRST_FEW])
        more = f", ... ({len(mixed) - FIRST_FEW} more)" if len(mixed) > FIRST_FEW else ""
        raise DatasetError([Problem(PARTITION_FILE, None,
                                    f"{len(mixed)} identities appear in more than one partition: {shown}{more}")],
                           "official split")
    return Split(
        name="official",
        train=tuple(sorted(parts[0])), valid=tuple(sorted(parts[1])), test=tuple(sorted(parts[2])),
        train_identities=frozenset(ids[0]), valid_identities=frozenset(ids[1]), test_identities=frozenset(ids[2]),
    )


def attribute_prevalence(records: Iterable[CelebARecord]) -> dict[str, float]:
    """Fraction of records with each of the 40 attributes (0.0 for no records)."""
    values = np.asarray([r.attributes for r in records], dtype=np.float64).reshape(-1, len(CELEBA_ATTRIBUTES))
    means = values.mean(axis=0) if len(values) else np.zeros(len(CELEBA_ATTRIBUTES))
    return {name: float(means[k]) for k, name in enumerate(CELEBA_ATTRIBUTES)}


# ----------------------------------------------------------------------------- parsing
@contextlib.contextmanager
def _gc_paused():
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


def _few(items: list, n: int = FIRST_FEW) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _looks_like_image(name: str) -> bool:
    return name.endswith(_SUFFIXES_BOTH_CASES) or name.lower().endswith(IMAGE_SUFFIXES)


def _read_lines(path: Path, problems: list[Problem]) -> list[str] | None:
    """The file's lines without trailing blank lines; None (and a problem) if unreadable."""
    if not path.exists():
        problems.append(Problem(path.name, None, f"file does not exist (expected {path})"))
        return None
    if path.is_dir():
        problems.append(Problem(path.name, None, "is a directory, not a file"))
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


def _parse_attributes(
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
        if not image_id.endswith(suffixes) and not _looks_like_image(image_id):
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


def _parse_two_columns(
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
    if len(first) == 1 and first[0].lstrip("-").isdigit():
        start, declared = 1, int(first[0])
    elif first and not _looks_like_image(first[0]):
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
            if len(parts) != 2 or not _looks_like_image(parts[0]):
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


def _check_agreement(files: list[tuple[str, dict[str, int]]], problems: list[Problem]) -> None:
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
            (dirs if entry.is_dir() else files).add(entry.name)
    problems = []
    if not any(_looks_like_image(name) for name in files):
        problems.append(Problem(label, None, f"directory {image_dir} contains no images"))
    not_files = sorted(listed & dirs)
    if not_files:
        problems.append(Problem(label, None, f"{len(not_files)} listed images are directories, not image files: {_few(not_files)}"))
    missing = sorted(listed - files - dirs)
    if missing and files:
        problems.append(Problem(label, None, f"{len(missing)} listed images are missing from {label}: {_few(missing)}"))
    return problems
