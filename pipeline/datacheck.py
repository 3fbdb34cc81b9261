"""Summaries of a CelebA or LFW tree for `faceaug data check`: counts, splits, problems.

`check_celeba` and `check_lfw` never raise on a bad tree: everything wrong goes into the
summary's "problems" list (file, line, message), so one run shows all there is to fix.
Every listed image is looked at (by its directory entry) so a FIFO, socket, device or broken
symlink is a problem in either mode. With `decode=True` every image is decoded in worker
processes, and undecodable files become problems too; each listed image is then accounted
for (decoded, bad, or absent as reported by the scan); mode conversions are counted as
`ImageReport` does during ingest.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.celeba import IMAGE_DIR as CELEBA_IMAGE_DIR
from pipeline.celeba import CelebA, attribute_prevalence, official_split, paper_split
from pipeline.celeba_files import is_dir_entry
from pipeline.errors import DatasetError, Problem
from pipeline.images import BadImageError, ImageReport, file_problem, image_size, load_rgb
from pipeline.lfw import IMAGE_DIR as LFW_IMAGE_DIR
from pipeline.lfw import LFW

# Without decode, image sizes are read from the headers of this many evenly spaced images.
SIZE_SAMPLE = 200
DECODE_CHUNK = 256


def check_celeba(root: str | Path, *, decode: bool = False, workers: int | None = None, test_identities: int = 2000) -> dict:
    """JSON-able summary of a CelebA tree (see the module docstring)."""
    root = Path(root)
    celeba, found = CelebA.scan(root)
    problems = list(found)
    summary: dict = {"dataset": "celeba", "path": str(root), "images": 0, "identities": 0}
    if celeba is not None:
        records = celeba.records
        groups = celeba.identities()
        counts = sorted(len(v) for v in groups.values())
        summary.update(images=len(records), identities=len(groups))
        summary["images_per_identity"] = (
            {"min": counts[0], "median": statistics.median(counts), "max": counts[-1]} if counts else None
        )
        splits: dict = {}
        if not 1 <= test_identities < len(groups):
            # A split parameter that does not fit this tree says nothing about the data: not a problem.
            splits["paper"] = {"not_applicable": (
                f"the paper split holds out test_identities={test_identities} identities, and this tree has "
                f"{len(groups)}; choose 1..{len(groups) - 1} with --test-identities N (data.test_identities when preparing)"
                if len(groups) > 1 else f"this tree has {len(groups)} identity; the paper split needs at least 2")}
        else:
            try:
                split = paper_split(celeba, test_identities=test_identities)
                splits["paper"] = {"test_identities": test_identities, **_parts(split, ("train", "test"))}
            except DatasetError as exc:
                problems.extend(exc.problems)
                splits["paper"] = {"error": str(exc)}
        try:
            split = official_split(celeba)
            splits["official"] = _parts(split, ("train", "valid", "test"))
        except DatasetError as exc:
            problems.extend(exc.problems)
            splits["official"] = {"error": str(exc)}
        summary["splits"] = splits
        summary["attribute_prevalence"] = {k: round(v, 6) for k, v in attribute_prevalence(records).items()}
        paths = [celeba.image_path(r.image_id) for r in records]
        summary.update(_image_facts(paths, root, decode, workers, problems, CELEBA_IMAGE_DIR))
    summary["problems"] = [p.as_dict() for p in problems]
    return summary


def check_lfw(root: str | Path, *, decode: bool = False, workers: int | None = None) -> dict:
    """JSON-able summary of an LFW tree: people, images, pairs per file, folds, problems."""
    root = Path(root)
    lfw, found = LFW.scan(root)
    problems = list(found)
    summary: dict = {"dataset": "lfw", "path": str(root), "people": 0, "images": 0}
    if lfw is not None:
        people = lfw.people()
        images = lfw.images()
        summary.update(people=len(people), images=len(images))
        counts = sorted(people.values())
        summary["images_per_person"] = (
            {"min": counts[0], "median": statistics.median(counts), "max": counts[-1]} if counts else None
        )
        summary["folds"] = lfw.folds
        summary["pair_files"] = {
            name: {"pairs": len(ps), "matched": sum(p.same for p in ps), "mismatched": sum(not p.same for p in ps),
                   "folds": len({p.fold for p in ps})}
            for name, ps in lfw.pair_sets.items()
        }
        summary.update(pairs=len(lfw.pairs), matched=sum(p.same for p in lfw.pairs),
                       mismatched=sum(not p.same for p in lfw.pairs))
        summary["images_in_pairs"] = len({rel for p in lfw.pairs for rel in (p.left, p.right)})
        paths = [lfw.image_path(rel) for rel in images]
        summary.update(_image_facts(paths, root, decode, workers, problems, LFW_IMAGE_DIR))
    summary["problems"] = [p.as_dict() for p in problems]
    return summary


def format_summary(summary: dict) -> str:
    """A few aligned lines for people; problems listed at the end."""
    rows: list[tuple[str, str]] = [("dataset", f"{summary.get('dataset')} at {summary.get('path')}")]
    if summary.get("dataset") == "celeba":
        rows.append(("images", f"{summary.get('images', 0)} of {summary.get('identities', 0)} identities"))
        ipi = summary.get("images_per_identity")
        if ipi:
            rows.append(("images/identity", f"min {ipi['min']}, median {ipi['median']}, max {ipi['max']}"))
        for name, split in summary.get("splits", {}).items():
            if "not_applicable" in split:
                rows.append((f"{name} split", f"not applicable: {split['not_applicable']}"))
                continue
            if "error" in split:
                rows.append((f"{name} split", "not available (see problems)"))
                continue
            parts = [f"{part} {v['images']} images / {v['identities']} ids" for part, v in split.items() if isinstance(v, dict)]
            rows.append((f"{name} split", "; ".join(parts)))
        prev = summary.get("attribute_prevalence")
        if prev:
            top = ", ".join(f"{k} {v:.1%}" for k, v in sorted(prev.items(), key=lambda kv: -kv[1])[:5])
            rows.append(("most common", top))
    else:
        rows.append(("people", str(summary.get("people", 0))))
        rows.append(("images", str(summary.get("images", 0))))
        for name, info in summary.get("pair_files", {}).items():
            rows.append((name, f"{info['pairs']} pairs ({info['matched']} matched, {info['mismatched']} mismatched) "
                               f"in {info['folds']} fold{'s' if info['folds'] != 1 else ''}"))
    sizes = summary.get("image_sizes")
    if summary.get("decoded"):
        listed, decoded = summary.get("images_listed", 0), summary.get("images_decoded", 0)
        how = (f"all {decoded} decoded" if decoded == listed else
               f"{decoded} of {listed} decoded; {summary.get('images_bad', 0)} bad and "
               f"{summary.get('images_absent', 0)} absent, listed under problems")
        rows.append(("image sizes", ", ".join(f"{k} x{v}" for k, v in (sizes or {}).items()) + f" ({how})"))
    elif sizes:
        rows.append(("image sizes", ", ".join(f"{k} x{v}" for k, v in sizes.items())
                     + f" ({summary.get('image_sizes_checked', 0)} sampled"
                     + (f", {summary['image_headers_bad']} more sampled with a bad header, listed under problems"
                        if summary.get("image_headers_bad") else "") + ")"))
    conv = summary.get("image_report", {}).get("converted") if summary.get("decoded") else None
    if conv:
        rows.append(("converted", ", ".join(f"{k} x{v}" for k, v in conv.items())))
    width = max(len(k) for k, _ in rows)
    out = [f"{k.ljust(width)}  {v}" for k, v in rows]
    problems = summary.get("problems", [])
    if problems:
        out.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:")
        out.extend(f"  {Problem(p['file'], p['line'], p['message'])}" for p in problems)
    else:
        out.append("no problems found")
    return "\n".join(out)


# ----------------------------------------------------------------------------- helpers
def _parts(split, names: tuple[str, ...]) -> dict:
    return {
        name: {"images": len(getattr(split, name)), "identities": len(getattr(split, f"{name}_identities"))}
        for name in names
    }


def _image_facts(paths: list[Path], root: Path, decode: bool, workers: int | None,
                 problems: list[Problem], image_dir: str) -> dict:
    """Image sizes (sampled headers, or every image decoded) and every bad file as a problem.

    Images the scan already reported (missing, or directories) are counted as absent; every other
    listed path is either decoded or a problem, so the counts always add up to the list.
    """
    def rel(p: str) -> str:
        try:
            return str(Path(p).relative_to(root))
        except ValueError:
            return str(p)

    kinds = _entry_kinds(paths)
    absent = [p for p in paths if kinds[p] in ("missing", "dir")]  # reported by the scan
    present = [p for p in paths if kinds[p] not in ("missing", "dir")]
    if decode:
        sizes, report = decode_all([str(p) for p in present], workers)
        for path, reason in report.skipped:
            problems.append(Problem(rel(path), None, reason))
        decoded = len(present) - len(report.skipped)
        return {"decoded": True, "image_sizes": _sorted_sizes(sizes), "image_sizes_checked": decoded,
                "images_listed": len(paths), "images_decoded": decoded, "images_bad": len(report.skipped),
                "images_absent": len(absent), "image_report": report.as_dict()}
    # Without decoding: every entry's file type (one directory listing each), and the headers of a sample.
    odd = [p for p in present if kinds[p] != "file"]
    for p in odd:
        problems.append(Problem(rel(str(p)), None, file_problem(p) or "is not a regular file"))
    regular = [p for p in present if kinds[p] == "file"]
    step = max(1, len(regular) // SIZE_SAMPLE)
    sample = regular[::step][:SIZE_SAMPLE]
    sizes: Counter = Counter()
    bad_headers = 0
    for p in sample:
        try:
            w, h = image_size(p)
        except BadImageError as exc:
            problems.append(Problem(rel(str(p)), None, exc.reason))
            bad_headers += 1
            continue
        sizes[f"{w}x{h}"] += 1
    return {"decoded": False, "image_sizes": _sorted_sizes(sizes), "image_sizes_checked": sum(sizes.values()),
            "image_headers_bad": bad_headers, "images_listed": len(paths), "images_not_regular": len(odd),
            "images_absent": len(absent)}


def _entry_kinds(paths: list[Path]) -> dict[Path, str]:
    """path -> "file" (a regular file, or a symlink to one), "dir", "missing" or "other" (FIFO, socket,
    device, broken or looping symlink), from one listing per directory: no stat per image, and no open."""
    by_dir: dict[Path, dict[str, Path]] = defaultdict(dict)
    for p in paths:
        by_dir[p.parent][p.name] = p
    kinds = {p: "missing" for p in paths}
    for folder, names in by_dir.items():
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    p = names.get(entry.name)
                    if p is None:
                        continue
                    if is_dir_entry(entry):
                        kinds[p] = "dir"
                    else:
                        try:
                            kinds[p] = "file" if entry.is_file() else "other"
                        except OSError:  # a symlink loop
                            kinds[p] = "other"
        except OSError:  # the folder itself is missing or unreadable: its images stay "missing" (the scan says why)
            continue
    return kinds


def _sorted_sizes(sizes: Counter) -> dict[str, int]:
    return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))


def _decode_chunk(paths: list[str]) -> tuple[Counter, ImageReport]:
    """Worker: decode every file; sizes seen and a report of conversions and failures."""
    sizes: Counter = Counter()
    report = ImageReport()
    for path in paths:
        try:
            arr = load_rgb(path, report)
        except BadImageError as exc:
            report.skipped.append((exc.path, exc.reason))
            continue
        sizes[f"{arr.shape[1]}x{arr.shape[0]}"] += 1
    return sizes, report


def decode_all(paths: list[str], workers: int | None = None) -> tuple[Counter, ImageReport]:
    """Decode every image (chunked over `workers` processes); -> (WxH counts, ImageReport).

    A chunk whose worker process dies is decoded again one image per process, so the image that
    crashes the decoder is reported by name (see `pipeline.workers.CrashIsolatingPool`)."""
    from pipeline.workers import CrashIsolatingPool

    workers = workers or os.cpu_count() or 1
    chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    sizes: Counter = Counter()
    report = ImageReport()
    if workers == 1 or len(chunks) <= 1:
        results = list(map(_decode_chunk, chunks))
    else:
        with CrashIsolatingPool(min(workers, len(chunks))) as pool:
            results = pool.map(_decode_chunk, chunks, _chunk_crashed)
        for k, (chunk, result) in enumerate(zip(chunks, results)):
            if result is None:  # its worker died: find the image that does it
                with CrashIsolatingPool(1) as alone:
                    singles = alone.map(_decode_chunk, [[p] for p in chunk], _single_crashed)
                results[k] = _merged(singles)
    for s, r in results:
        sizes.update(s)
        report.merge(r)
    return sizes, report


def _chunk_crashed(chunk: list[str], reason: str) -> None:
    return None


def _single_crashed(chunk: list[str], reason: str) -> tuple[Counter, ImageReport]:
    report = ImageReport()
    report.skipped.append((chunk[0], reason))
    return Counter(), report


def _merged(results: list[tuple[Counter, ImageReport]]) -> tuple[Counter, ImageReport]:
    sizes: Counter = Counter()
    report = ImageReport()
    for s, r in results:
        sizes.update(s)
        report.merge(r)
    return sizes, report
