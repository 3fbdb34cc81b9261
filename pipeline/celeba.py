"""The aligned CelebA tree: annotation files, validation, identity-based splits.

Layout under a root directory (the official "Align&Cropped" release):

    img_align_celeba/000001.jpg ...   178x218 JPEGs
    list_attr_celeba.txt              line 1: image count; line 2: the 40 attribute names;
                                      then "000001.jpg -1  1 ..." (one or two spaces)
    identity_CelebA.txt               "000001.jpg 2880" (copies with a header line exist)
    list_eval_partition.txt           "000001.jpg 0"; 0/1/2 = train/valid/test

Attributes are located by name (any column order), and -1/1 become 0/1 (the files are parsed in
`pipeline.celeba_files`). Every violation is collected as a `Problem` naming file and line; `CelebA.open` raises them all at once in a
`DatasetError`, `CelebA.scan` returns them (for `faceaug data check`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, TypeVar

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.celeba_files import (
    FIRST_FEW, check_agreement, check_image_dir, few, gc_paused, parse_attributes, parse_two_columns,
)
from pipeline.errors import DatasetError, Problem
from pipeline.images import BadImageError, ImageReport, load_rgb, preprocess

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
ALIGNED_SHAPE = (218, 178)  # height, width of the aligned images
PARTITION_NAMES = {0: "train", 1: "valid", 2: "test"}


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
        with gc_paused():
            return cls._scan(root, check_files)

    @classmethod
    def _scan(cls, root: Path, check_files: bool) -> tuple["CelebA | None", list[Problem]]:
        problems: list[Problem] = []
        attrs, attr_lines, names = parse_attributes(root / ATTR_FILE, problems)
        identities, id_lines = parse_two_columns(root / IDENTITY_FILE, problems, "identity", range(0, 2**62))
        partitions, part_lines = parse_two_columns(root / PARTITION_FILE, problems, "partition", range(3))
        check_agreement(
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
                                            f"{len(shared)} identities are in both {a} and {b}: {few(shared)}"))
                shared_images = sorted(set(a_images) & set(b_images))
                if shared_images:
                    problems.append(Problem(f"split {self.name}", None,
                                            f"{len(shared_images)} images are in both {a} and {b}: {few(shared_images)}"))
        if problems:
            raise DatasetError(problems, f"split {self.name!r}")


def paper_split(celeba: CelebA, test_identities: int = 2000, valid_identities: int = 0) -> Split:
    """The SaGAN paper's split: the identities with the most images train, the rest test.

    Identities are ordered by image count (descending), ties broken by identity number
    (ascending); the first n - `test_identities` train, the last `test_identities` test.
    On the real files this gives 8,177 train identities with 191,649 images and 2,000
    test identities with 10,950 images; the boundary falls inside the identities with 10
    images, so the tie-break decides which of them test but not the totals.
    `valid_identities` (not in the paper) moves every k-th training identity in that order to a
    validation part, for choosing editor checkpoints; 0 keeps the paper's split exactly.
    """
    groups = celeba.identities()
    n = len(groups)
    if not 1 <= test_identities < n:
        raise DatasetError([Problem(IDENTITY_FILE, None,
                                    f"the paper split needs 1 <= test_identities < {n} (the number of identities); "
                                    f"got {test_identities}")], "paper split")
    order = sorted(groups, key=lambda i: (-len(groups[i]), i))
    train_ids, test_ids = order[: n - test_identities], order[n - test_identities :]
    if not 0 <= valid_identities < len(train_ids):
        raise DatasetError([Problem(IDENTITY_FILE, None, f"the paper split has {len(train_ids)} training identities; "
                                    f"valid_identities must be below that, got {valid_identities}")], "paper split")
    valid_ids: list[int] = []
    if valid_identities:
        step = len(train_ids) / valid_identities  # spread over the image-count order, so validation is not all small identities
        picked = {int(k * step) for k in range(valid_identities)}
        valid_ids = [i for k, i in enumerate(train_ids) if k in picked]
        train_ids = [i for k, i in enumerate(train_ids) if k not in picked]
    return Split(
        name="paper",
        train=tuple(sorted(x for i in train_ids for x in groups[i])),
        test=tuple(sorted(x for i in test_ids for x in groups[i])),
        valid=tuple(sorted(x for i in valid_ids for x in groups[i])),
        train_identities=frozenset(train_ids), test_identities=frozenset(test_ids), valid_identities=frozenset(valid_ids),
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
