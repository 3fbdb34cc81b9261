"""The LFW tree and its pairs files, validated line by line.

Layout under a root directory:

    lfw/<Name>/<Name>_0001.jpg ...    250x250 JPEGs, 4-digit image numbers from 1
    pairs.txt                         "<folds>\t<P>" (real: "10\t300"), then per fold P matched
                                      lines "name\tn1\tn2" and P mismatched lines
                                      "name1\tn1\tname2\tn2"
    pairsDevTrain.txt, pairsDevTest.txt   (optional) "N", then N matched and N mismatched lines

Fields may be separated by any whitespace. Every malformed line and every pair that points
at a missing image is reported as a `Problem` with file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.celeba_files import is_dir_entry, text_file_problem
from pipeline.errors import DatasetError, Problem
from pipeline.images import ImageReport, load_rgb, preprocess

IMAGE_DIR = "lfw"
PAIRS_FILE = "pairs.txt"
DEV_FILES = ("pairsDevTrain.txt", "pairsDevTest.txt")

# LFW's 250x250 images show much more background around a smaller face than CelebA's
# aligned crops. Keeping the central 60% (150 px of 250) before resizing gives faces a
# framing comparable to CelebA's 178x178 centre crop. `data.lfw_crop_fraction` overrides it.
LFW_CROP_FRACTION = 0.6
LFW_SHAPE = (250, 250)


@dataclass(frozen=True)
class Pair:
    left: str  # relative image path, e.g. "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    right: str
    same: bool
    fold: int  # 0-based; always 0 in the dev files
    line: int  # line in its pairs file


def pair_path(name: str, n: int) -> str:
    """'Aaron_Eckhart', 1 -> 'Aaron_Eckhart/Aaron_Eckhart_0001.jpg'."""
    return f"{name}/{name}_{n:04d}.jpg"


class LFW:
    """A validated LFW tree: the image files, the 10-fold pairs and (if present) the dev pairs."""

    def __init__(self, root: str | Path, pair_sets: dict[str, list[Pair]], folds: int, files: set[str] | None = None):
        self.root = Path(root)
        self.pair_sets = pair_sets  # file name -> its pairs, in file order
        self.pairs = pair_sets.get(PAIRS_FILE, [])
        self.folds = folds
        self._files = files

    def __repr__(self) -> str:
        return f"LFW({str(self.root)!r}, {len(self.pairs)} pairs in {self.folds} folds)"

    @property
    def dev_train(self) -> list[Pair]:
        return self.pair_sets.get(DEV_FILES[0], [])

    @property
    def dev_test(self) -> list[Pair]:
        return self.pair_sets.get(DEV_FILES[1], [])

    @classmethod
    def open(cls, root: str | Path, *, check_files: bool = True) -> "LFW":
        """Read and validate the tree; raises DatasetError listing every problem found."""
        lfw, problems = cls.scan(root, check_files=check_files)
        if problems or lfw is None:
            raise DatasetError(problems, f"LFW tree {root}")
        return lfw

    @classmethod
    def scan(cls, root: str | Path, *, check_files: bool = True) -> tuple["LFW | None", list[Problem]]:
        """Read the tree, collecting problems instead of raising (None if nothing is usable)."""
        root = Path(root)
        if not root.is_dir():
            return None, [Problem(str(root), None, f"directory {root} does not exist")]
        problems: list[Problem] = []
        files = None
        if check_files:
            files, dir_problems = list_images(root / IMAGE_DIR)
            problems.extend(dir_problems)
        pair_sets: dict[str, list[Pair]] = {}
        folds = 0
        pairs, folds = _parse_pairs(root / PAIRS_FILE, problems, dev=False)
        if pairs is not None:
            pair_sets[PAIRS_FILE] = pairs
        for name in DEV_FILES:
            if os.path.lexists(root / name):  # optional, but a dangling link to one is reported
                dev, _ = _parse_pairs(root / name, problems, dev=True)
                if dev is not None:
                    pair_sets[name] = dev
        if files is not None and files:
            for fname, ps in pair_sets.items():
                for p in ps:
                    missing = [rel for rel in dict.fromkeys((p.left, p.right)) if rel not in files]
                    if missing:
                        problems.append(Problem(fname, p.line, f"{' and '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist"))
        if pairs is None:
            return None, problems
        return cls(root, pair_sets, folds, files), problems

    def image_path(self, rel: str) -> Path:
        return self.root / IMAGE_DIR / rel

    def images(self) -> list[str]:
        """All image paths relative to lfw/, sorted."""
        if self._files is None:
            self._files, _ = list_images(self.root / IMAGE_DIR)
        return sorted(self._files)

    def people(self) -> dict[str, int]:
        """Person name -> number of images, names sorted."""
        counts: dict[str, int] = {}
        for rel in self.images():
            name = rel.split("/", 1)[0]
            counts[name] = counts.get(name, 0) + 1
        return counts

    def load_image(self, rel: str, size: int, report: ImageReport | None = None,
                   crop_fraction: float = LFW_CROP_FRACTION) -> np.ndarray:
        """Decode one image, keep the central `crop_fraction` square, resize: size x size x 3 uint8."""
        arr = load_rgb(self.image_path(rel), report)
        if arr.shape[:2] != LFW_SHAPE and report is not None:
            report.note(f"{arr.shape[1]}x{arr.shape[0]} (not 250x250) cropped and resized")
        return preprocess(arr, size, crop_fraction)


def list_images(image_dir: Path) -> tuple[set[str], list[Problem]]:
    """Relative paths 'Name/file.jpg' of the files one level down in lfw/ (one listing per person)."""
    label = image_dir.name + "/"
    if not image_dir.is_dir():
        return set(), [Problem(label, None, f"directory {image_dir} does not exist")]
    files: set[str] = set()
    with os.scandir(image_dir) as people:
        for person in people:
            if not is_dir_entry(person):
                continue
            with os.scandir(person.path) as it:
                for entry in it:
                    if not is_dir_entry(entry):
                        files.add(f"{person.name}/{entry.name}")
    if not files:
        return files, [Problem(label, None, f"directory {image_dir} contains no images")]
    return files, []


def _parse_pairs(path: Path, problems: list[Problem], *, dev: bool) -> tuple[list[Pair] | None, int]:
    """-> (pairs, folds). pairs.txt's header is '<folds> <P>', a dev file's is '<N>' (one fold)."""
    file = path.name
    why = text_file_problem(path)
    if why is not None:
        problems.append(Problem(file, None, why))
        return None, 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        problems.append(Problem(file, None, f"cannot read file ({exc.strerror or exc})"))
        return None, 0
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        problems.append(Problem(file, None, "file is empty"))
        return None, 0
    head = lines[0].split()
    folds, per = None, None
    try:
        if dev and len(head) == 1:
            folds, per = 1, int(head[0])
        elif not dev and len(head) == 2:
            folds, per = int(head[0]), int(head[1])
        else:
            raise ValueError
        if folds < 1 or per < 1:
            raise ValueError
    except ValueError:
        want = "'<N>'" if dev else "'<folds> <pairs per fold>'"
        problems.append(Problem(file, 1, f"expected a header {want} of positive integers, found {lines[0].strip()[:40]!r}"))
        folds, per = None, None
    body = lines[1:]
    if folds is not None:
        expected = folds * 2 * per
        if len(body) != expected:
            what = f"{per} matched + {per} mismatched" if dev else f"{folds} folds x ({per} matched + {per} mismatched)"
            problems.append(Problem(file, 1, f"header says {what} = {expected} pair lines, file has {len(body)}"))
    pairs: list[Pair] = []
    for index, line in enumerate(body):
        lineno = index + 2
        parts = line.split()
        fold = index // (2 * per) if per else 0
        expect_same = (index % (2 * per)) < per if per else None
        if len(parts) not in (3, 4):
            problems.append(Problem(file, lineno, f"expected 3 fields (matched pair) or 4 (mismatched pair), found {len(parts)}"))
            continue
        same = len(parts) == 3
        if expect_same is not None and index < folds * 2 * per and same != expect_same:
            kind = ("a matched pair (name n1 n2)", "a mismatched pair (name1 n1 name2 n2)")
            want, got = (kind[0], kind[1]) if expect_same else (kind[1], kind[0])
            problems.append(Problem(file, lineno, f"expected {want} here by the header's counts, found {got}"))
            continue
        names = (parts[0], parts[0]) if same else (parts[0], parts[2])
        numbers = (parts[1], parts[2]) if same else (parts[1], parts[3])
        try:
            n1, n2 = (int(x) for x in numbers)
        except ValueError:
            problems.append(Problem(file, lineno, f"image numbers must be integers, found {' and '.join(repr(x) for x in numbers)}"))
            continue
        if n1 < 1 or n2 < 1:
            problems.append(Problem(file, lineno, f"image numbers start at 1, found {n1} and {n2}"))
            continue
        if same and n1 == n2:
            problems.append(Problem(file, lineno, f"matched pair compares image {n1} with itself"))
            continue
        if not same and names[0] == names[1]:
            problems.append(Problem(file, lineno, f"mismatched pair names the same person twice ({names[0]})"))
            continue
        pairs.append(Pair(pair_path(names[0], n1), pair_path(names[1], n2), same, fold, lineno))
    return pairs, (folds or 0)
