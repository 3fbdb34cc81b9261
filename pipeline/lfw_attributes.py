"""LFW attribute scores: the file of Kumar et al. ("Attribute and Simile Classifiers for Face
Verification", ICCV 2009), `lfw_attributes.txt`, read and validated line by line.

Format: lines beginning with `#` are comments; the last comment line names the columns, tab
separated: `person`, `imagenum` and 73 attribute names. Each data row is the person's name with
spaces where LFW's folder name has underscores ("Aaron Eckhart" for `lfw/Aaron_Eckhart/`), the
image number, and 73 real-valued classifier scores; a score > 0 means the attribute is present.
The file covers most but not all LFW images. Every malformed row is reported as a `Problem` with
its line number, and `read_lfw_attributes` raises them all at once in a `DatasetError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DatasetError, Problem

ATTRIBUTES_FILE = "lfw_attributes.txt"
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# The 73 columns of Kumar et al.'s file, in its order.
LFW_ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Male", "Asian", "White", "Black", "Baby", "Child", "Youth", "Middle Aged", "Senior", "Black Hair",
    "Blond Hair", "Brown Hair", "Bald", "No Eyewear", "Eyeglasses", "Sunglasses", "Mustache", "Smiling",
    "Frowning", "Chubby", "Blurry", "Harsh Lighting", "Flash", "Soft Lighting", "Outdoor", "Curly Hair",
    "Wavy Hair", "Straight Hair", "Receding Hairline", "Bangs", "Sideburns", "Fully Visible Forehead",
    "Partially Visible Forehead", "Obstructed Forehead", "Bushy Eyebrows", "Arched Eyebrows", "Narrow Eyes",
    "Eyes Open", "Big Nose", "Pointy Nose", "Big Lips", "Mouth Closed", "Mouth Slightly Open", "Mouth Wide Open",
    "Teeth Not Visible", "No Beard", "Goatee", "Round Jaw", "Double Chin", "Wearing Hat", "Oval Face",
    "Square Face", "Round Face", "Color Photo", "Posed Photo", "Attractive Man", "Attractive Woman", "Indian",
    "Gray Hair", "Bags Under Eyes", "Heavy Makeup", "Rosy Cheeks", "Shiny Skin", "Pale Skin", "5 o' Clock Shadow",
    "Strong Nose-Mouth Lines", "Wearing Lipstick", "Flushed Face", "High Cheekbones", "Brown Eyes",
    "Wearing Earrings", "Wearing Necktie", "Wearing Necklace",
)

# The CelebA name of each edited attribute in the LFW file (faceaug's 'eyeglasses' -> 'Eyeglasses').
LFW_COLUMN_OF = {"eyeglasses": "Eyeglasses", "mouth_slightly_open": "Mouth Slightly Open", "smiling": "Smiling",
                 "no_beard": "No Beard", "male": "Male"}


@dataclass(frozen=True)
class LFWAttributes:
    """Scores per image: `scores[i, j]` for image `images[i]` ('Name/Name_0001.jpg') and column `columns[j]`."""

    images: tuple[str, ...]
    columns: tuple[str, ...]
    scores: np.ndarray  # float32, len(images) x len(columns)

    def present(self, attribute: str) -> dict[str, bool]:
        """image -> score > 0, for a column name or a faceaug attribute name ('eyeglasses')."""
        column = LFW_COLUMN_OF.get(attribute, attribute)
        if column not in self.columns:
            raise KeyError(f"{ATTRIBUTES_FILE} has no column {column!r}")
        j = self.columns.index(column)
        return {image: bool(v > 0) for image, v in zip(self.images, self.scores[:, j])}


def image_of(person: str, number: int) -> str:
    """('Aaron Eckhart', 1) -> 'Aaron_Eckhart/Aaron_Eckhart_0001.jpg' (LFW's folder and file names)."""
    folder = person.strip().replace(" ", "_")
    return f"{folder}/{folder}_{number:04d}.jpg"


def parse_lfw_attributes(text: str, file: str = ATTRIBUTES_FILE) -> tuple[LFWAttributes | None, list[Problem]]:
    """Parse the file's text, collecting every problem (None when no header names the columns)."""
    problems: list[Problem] = []
    header, header_line = None, None
    images: list[str] = []
    rows: list[list[float]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            header, header_line = line, lineno  # the last comment line names the columns
            continue
        if header is None:
            problems.append(Problem(file, lineno, "a data row before the comment line that names the columns"))
            return None, problems
        if not isinstance(header, list):
            header = _columns(header, header_line, file, problems)
            if header is None:
                return None, problems
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != len(header) + 2:
            problems.append(Problem(file, lineno, f"expected {len(header) + 2} tab-separated fields (person, imagenum, "
                                                  f"{len(header)} scores), found {len(fields)}"))
            continue
        person, number = fields[0].strip(), fields[1].strip()
        if not person:
            problems.append(Problem(file, lineno, "empty person name"))
            continue
        try:
            n = int(number)
            if n < 1:
                raise ValueError
        except ValueError:
            problems.append(Problem(file, lineno, f"imagenum must be a positive integer, found {number[:20]!r}"))
            continue
        try:
            values = [float(v) for v in fields[2:]]
        except ValueError:
            bad = next(v for v in fields[2:] if not _is_float(v))
            problems.append(Problem(file, lineno, f"scores must be numbers, found {bad[:20]!r}"))
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(Problem(file, lineno, "scores must be finite (found NaN or infinity)"))
            continue
        if any(abs(v) > _FLOAT32_MAX for v in values):  # stored as float32: it would become infinity
            problems.append(Problem(file, lineno, f"scores must be within ±{_FLOAT32_MAX:.3g}"))
            continue
        image = image_of(person, n)
        if image in seen:
            problems.append(Problem(file, lineno, f"duplicate row for {person!r} {n} (first on line {seen[image]})"))
            continue
        seen[image] = lineno
        images.append(image)
        rows.append(values)
    if header is None:
        problems.append(Problem(file, None, "no comment line naming the columns (person, imagenum, attributes)"))
        return None, problems
    if not isinstance(header, list):
        header = _columns(header, header_line, file, problems)
        if header is None:
            return None, problems
    scores = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(header))
    return LFWAttributes(tuple(images), tuple(header), scores), problems


def _columns(line: str, lineno: int, file: str, problems: list[Problem]) -> list[str] | None:
    names = [c.strip() for c in line.lstrip("#").split("\t")]
    names = [c for c in names if c]
    if len(names) < 3 or names[0].lower() != "person" or names[1].lower() != "imagenum":
        problems.append(Problem(file, lineno, "the last comment line must name the columns: 'person', 'imagenum', "
                                              f"then the attributes (tab separated); found {line.strip()[:60]!r}"))
        return None
    attributes = names[2:]
    duplicated = sorted({a for a in attributes if attributes.count(a) > 1})
    if duplicated:
        problems.append(Problem(file, lineno, f"attribute columns named twice: {', '.join(duplicated)}"))
        return None
    return attributes


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_lfw_attributes(path: str | Path) -> LFWAttributes:
    """Read and validate an attribute file; raises DatasetError listing every problem (with line numbers)."""
    from pipeline.celeba_files import text_file_problem

    path = Path(path)
    why = text_file_problem(path)  # a FIFO would block the read below
    if why is not None:
        raise DatasetError([Problem(path.name, None, why)], f"LFW attributes {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError([Problem(path.name, None, f"not UTF-8 text ({exc})")], f"LFW attributes {path}") from None
    except OSError as exc:
        raise DatasetError([Problem(path.name, None, f"cannot read file ({exc.strerror or exc})")], f"LFW attributes {path}") from None
    attrs, problems = parse_lfw_attributes(text, path.name)
    if problems or attrs is None:
        raise DatasetError(problems, f"LFW attributes {path}")
    return attrs
