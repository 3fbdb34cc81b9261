"""Writing the synthetic benchmark as a CelebA-aligned tree and an LFW tree, in parallel.

Layout under `out`:
    celeba/img_align_celeba/000001.jpg ...   size x size JPEGs (real CelebA is 178x218 and the
                                              project's reader centre-crops a square, so a square
                                              render already is "the aligned crop")
    celeba/list_attr_celeba.txt               count, 40 names, one row of -1/1 per image
    celeba/identity_CelebA.txt                "000001.jpg 17" per line, identities from 1
    celeba/list_eval_partition.txt            "000001.jpg 0"; 0/1/2 identity-disjoint, ~80/10/10
                                              (plus `extra_test_identities` more identities in 2)
    celeba/attribute_regions/000001.png       uint8, bit k = REGION_BITS attribute k's region
    celeba/attribute_regions/regions.json     the bits
    celeba/render_params.json                 what re-renders any image exactly (pipeline/synth/recipe.py)
    lfw/lfw/<Name>/<Name>_0001.jpg            round(size / 0.6) square, face in the central 60%
    lfw/pairs.txt, pairsDevTrain.txt, pairsDevTest.txt
    lfw/lfw_attributes.txt                    per-image attribute scores in the format of Kumar et al.'s file
    synth.json                                parameters, stats source, identity traits

Every image is seeded from (seed, domain, image index), never from worker state, so the
files are byte-identical for any worker count.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from itertools import combinations
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.attributes import CELEBA_ATTRIBUTES, REGION_BITS
from pipeline.synth.faces import canvas_side
from pipeline.synth.lfw_attributes import write_lfw_attributes
from pipeline.synth.population import images_per_identity as identity_image_counts
from pipeline.synth.population import (
    RENDERED_ATTRIBUTES, STATS_PATH, Identity, load_stats, sample_labels, sample_person, without_mixing,
)
from pipeline.synth.recipe import CELEBA_STREAM as _CELEBA
from pipeline.synth.recipe import LFW_STREAM as _LFW
from pipeline.synth.recipe import RenderRecords, render_image, seq as _seq
from pipeline.synth.regions import decode_regions, encode_regions
from pipeline.synth.style import DEFAULT_STYLE, Style
from pipeline.workers import die_with_parent
_IDX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
_SYLLABLES = ("al", "da", "mor", "ven", "ka", "ri", "to", "sel", "mi", "na", "bor", "lin", "qua", "ze", "fen",
              "do", "ra", "vi", "tan", "el", "so", "mar", "gi", "lu", "pe", "ther", "wyn", "cor", "ba", "nes")
CHUNK = 48


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("faceaug")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


# ---------------------------------------------------------------- workers

_W: dict = {}


def _init_worker(identities: dict, size: int, seed: int, style: Style, parent_pid: int | None = None) -> None:
    if parent_pid is not None:  # a pool worker: die with the parent
        die_with_parent(parent_pid)
    _W.update(identities=identities, size=size, seed=seed, style=style)


def _render_job(job: tuple) -> None:
    domain, index, ident_key, labels, img_path, region_path = job
    ident: Identity = _W["identities"][ident_key]
    img, regions, quality = render_image(ident, labels, domain, index, _W["seed"], _W["size"], _W["style"])
    Image.fromarray(img).save(img_path, format="JPEG", quality=quality)
    if region_path is not None:
        Image.fromarray(encode_regions(regions)).save(region_path, format="PNG", compress_level=1)


def _render_chunk(chunk: list[tuple]) -> int:
    for job in chunk:
        _render_job(job)
    return len(chunk)


# ---------------------------------------------------------------- populations

def _lfw_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        first = "".join(rng.choice(_SYLLABLES, int(rng.integers(2, 3)))).capitalize()
        last = "".join(rng.choice(_SYLLABLES, int(rng.integers(2, 4)))).capitalize()
        name = f"{first}_{last}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _lfw_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """LFW-like: about 65% of people have one image, the rest a few (long tail, capped at 40)."""
    single = rng.random(n) < 0.65
    many = 1 + rng.geometric(0.3, n)
    return np.where(single, 1, np.minimum(many, 40)).astype(np.int64)


def _matched_candidates(names, counts, members) -> list[tuple[str, int, int]]:
    out = []
    for i in members:
        for a, b in combinations(range(1, counts[i] + 1), 2):
            out.append((names[i], a, b))
    return out


def _sample_pairs(rng, names, counts, members, n: int) -> tuple[list[str], list[str]]:
    """n matched and n mismatched pair lines among `members`, no duplicate pair."""
    cand = _matched_candidates(names, counts, members)
    if n > len(cand):
        raise ValueError(f"only {len(cand)} matched pairs are possible in a fold, {n} asked; use more LFW identities")
    matched = [f"{a}\t{i}\t{j}" for a, i, j in (cand[k] for k in sorted(rng.choice(len(cand), n, replace=False)))]
    members = list(members)
    total = sum(int(counts[i]) for i in members)
    cap = (total**2 - sum(int(counts[i]) ** 2 for i in members)) // 2
    if n > cap:
        raise ValueError(f"only {cap} mismatched pairs are possible in a fold, {n} asked; use more LFW identities")
    seen: set = set()
    mismatched = []
    while len(mismatched) < n:
        a, b = rng.choice(len(members), 2, replace=False)
        ia, ib = members[int(a)], members[int(b)]
        na, nb = int(rng.integers(1, counts[ia] + 1)), int(rng.integers(1, counts[ib] + 1))
        key = frozenset([(ia, na), (ib, nb)])
        if key in seen:
            continue
        seen.add(key)
        if names[ia] > names[ib]:
            ia, na, ib, nb = ib, nb, ia, na
        mismatched.append(f"{names[ia]}\t{na}\t{names[ib]}\t{nb}")
    return matched, mismatched


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; refusing to write the synthetic benchmark into it "
                                  "(pass overwrite=True to replace its celeba/, lfw/ and synth.json)")
        for sub in ("celeba", "lfw"):
            if (out / sub).exists():
                shutil.rmtree(out / sub)
        (out / "synth.json").unlink(missing_ok=True)


def _print_progress(done: int, total: int, _state={"last": -1, "t0": None}) -> None:
    if done == 0 or _state["t0"] is None:
        _state["t0"], _state["last"] = time.perf_counter(), -1
    step = max(1, total // 10)
    if done // step != _state["last"] or done == total:
        _state["last"] = done // step
        dt = time.perf_counter() - _state["t0"]
        rate = done / dt * 60 if dt > 0 else 0.0
        print(f"synth: {done}/{total} images ({rate:,.0f} images/min)", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the benchmark

def render_benchmark(
    out: str | Path,
    *,
    identities: int,
    images_per_identity: int,
    size: int = 128,
    seed: int = 0,
    lfw_identities: int | None = None,
    lfw_pairs_per_fold: int | None = None,
    fixed_count: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    style: Style = DEFAULT_STYLE,
    train_mixing: float = 1.0,
    extra_test_identities: int = 0,
) -> dict:
    """Render the CelebA-format and LFW-format synthetic trees under `out`; returns a summary.

    `style`: the renderer's knobs (`pipeline.synth.style`). `train_mixing` < 1 is the stress setting:
    identities of the training partition (list_eval_partition.txt's 0) keep each attribute's
    within-identity variation only with this probability, otherwise always or never have it
    (`population.without_mixing`); validation and test identities keep CelebA's mixing.

    `extra_test_identities` appends that many more identities to the test partition (2), drawn from
    their own seed streams and numbered after the base identities and images, so every file of the
    base population (images, regions, annotation lines) is byte-identical to a render without them:
    a larger test set for the same training and validation data, hence the same trained models."""
    if identities < 3:
        raise ValueError(f"identities must be at least 3 (train/valid/test need one each), got {identities}")
    if images_per_identity < 1:
        raise ValueError(f"images_per_identity must be at least 1, got {images_per_identity}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if not 0.0 <= train_mixing <= 1.0:
        raise ValueError(f"train_mixing must be in [0, 1], got {train_mixing}")
    if extra_test_identities < 0:
        raise ValueError(f"extra_test_identities must be at least 0, got {extra_test_identities}")
    n_lfw = lfw_identities if lfw_identities is not None else max(20, round(identities * 5749 / 10177))
    if n_lfw < 20:
        raise ValueError(f"lfw_identities must be at least 20 (10 folds of at least 2 people), got {n_lfw}")
    workers = max(1, workers or os.cpu_count() or 1)
    progress = progress or _print_progress
    out = Path(out)
    _prepare_out(out, overwrite)

    # 1. CelebA population: identities, image counts, labels, shuffled image order, partitions
    spread = style.identity_spread
    people = [sample_person(np.random.default_rng(_seq(seed, _CELEBA, i)), i + 1, spread) for i in range(identities)]
    counts = identity_image_counts(np.random.default_rng(_seq(seed, _CELEBA + 1)), identities,
                                   images_per_identity, fixed_count)
    id_perm = np.random.default_rng(_seq(seed, _CELEBA + 4)).permutation(identities)
    n_valid = max(1, round(identities * 0.1))
    n_test = max(1, round(identities * 0.1))
    partition = np.zeros(identities, dtype=np.int64)
    partition[id_perm[identities - n_valid - n_test : identities - n_test]] = 1
    partition[id_perm[identities - n_test :]] = 2
    if train_mixing < 1.0:
        people = [without_mixing(p, np.random.default_rng(_seq(seed, _CELEBA + 5, i)), train_mixing) if partition[i] == 0 else p
                  for i, p in enumerate(people)]
    labels = [sample_labels(np.random.default_rng(_seq(seed, _CELEBA + 2, i)), p, int(n))
              for i, (p, n) in enumerate(zip(people, counts))]
    order = [(i, j) for i, n in enumerate(counts) for j in range(int(n))]
    perm = np.random.default_rng(_seq(seed, _CELEBA + 3)).permutation(len(order))
    order = [order[k] for k in perm]
    if extra_test_identities:
        # Extra test identities: appended after the base population, from streams of their own (6-9;
        # 10 is the per-image nuisance stream, recipe.image_params), so no base draw moves. Their
        # identity numbers follow the base ones and their images follow every base image in `order`
        # (an image's file name and nuisance draw come from its position), so the base files stay
        # byte-identical; train_mixing never applies (they are test identities).
        n_extra = extra_test_identities
        people += [sample_person(np.random.default_rng(_seq(seed, _CELEBA + 6, i)), identities + i + 1, spread)
                   for i in range(n_extra)]
        extra_counts = identity_image_counts(np.random.default_rng(_seq(seed, _CELEBA + 7)), n_extra,
                                             images_per_identity, fixed_count)
        labels += [sample_labels(np.random.default_rng(_seq(seed, _CELEBA + 8, i)), people[identities + i], int(n))
                   for i, n in enumerate(extra_counts)]
        extra = [(identities + i, j) for i, n in enumerate(extra_counts) for j in range(int(n))]
        order += [extra[k] for k in np.random.default_rng(_seq(seed, _CELEBA + 9)).permutation(len(extra))]
        counts = np.concatenate([counts, extra_counts])
        partition = np.concatenate([partition, np.full(n_extra, 2, dtype=np.int64)])

    # 2. LFW population (its own seed stream: different people), counts, names, folds
    lfw_people = [sample_person(np.random.default_rng(_seq(seed, _LFW, i)), i + 1, spread) for i in range(n_lfw)]
    lfw_counts = _lfw_counts(np.random.default_rng(_seq(seed, _LFW + 1)), n_lfw)
    names = _lfw_names(np.random.default_rng(_seq(seed, _LFW + 2)), n_lfw)
    fold_rng = np.random.default_rng(_seq(seed, _LFW + 3))
    fold_of = np.empty(n_lfw, dtype=np.int64)
    fold_of[fold_rng.permutation(n_lfw)] = np.arange(n_lfw) % 10
    folds = [np.flatnonzero(fold_of == f) for f in range(10)]
    for members in folds:  # every fold needs someone with two images for its matched pairs
        if lfw_counts[members].max() < 2:
            lfw_counts[members[0]] = 2
    caps = [len(_matched_candidates(names, lfw_counts, m)) for m in folds]
    pairs_p = lfw_pairs_per_fold if lfw_pairs_per_fold is not None else min(300, min(caps))
    pair_rng = np.random.default_rng(_seq(seed, _LFW + 4))
    pair_lines = [f"10\t{pairs_p}"]
    for members in folds:
        m, mm = _sample_pairs(pair_rng, names, lfw_counts, members, pairs_p)
        pair_lines += m + mm
    dev_train_ids = np.concatenate(folds[:7])
    dev_test_ids = np.concatenate(folds[7:])
    n_dev_train = min(1100, len(_matched_candidates(names, lfw_counts, dev_train_ids)))
    n_dev_test = min(500, len(_matched_candidates(names, lfw_counts, dev_test_ids)))
    dev = {}
    for fname, ids, n in (("pairsDevTrain.txt", dev_train_ids, n_dev_train), ("pairsDevTest.txt", dev_test_ids, n_dev_test)):
        m, mm = _sample_pairs(pair_rng, names, lfw_counts, sorted(int(i) for i in ids), n)
        dev[fname] = [str(n)] + m + mm
    lfw_labels = [sample_labels(np.random.default_rng(_seq(seed, _LFW + 5, i)), p, int(n))
                  for i, (p, n) in enumerate(zip(lfw_people, lfw_counts))]

    # 3. directories and jobs
    celeba = out / "celeba"
    img_dir = celeba / "img_align_celeba"
    reg_dir = celeba / "attribute_regions"
    lfw_root = out / "lfw"
    for d in (img_dir, reg_dir, lfw_root / "lfw"):
        d.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple] = []
    rows = []
    for k, (i, j) in enumerate(order, start=1):
        stem = f"{k:06d}"
        jobs.append(("celeba", k, ("c", i), labels[i][j], str(img_dir / f"{stem}.jpg"), str(reg_dir / f"{stem}.png")))
        rows.append((f"{stem}.jpg", i, labels[i][j]))
    lfw_index = 0
    for i, name in enumerate(names):
        (lfw_root / "lfw" / name).mkdir(exist_ok=True)
        for j in range(int(lfw_counts[i])):
            lfw_index += 1
            jobs.append(("lfw", lfw_index, ("l", i), lfw_labels[i][j], str(lfw_root / "lfw" / name / f"{name}_{j + 1:04d}.jpg"), None))
    idents = {("c", i): p.identity for i, p in enumerate(people)}
    idents.update({("l", i): p.identity for i, p in enumerate(lfw_people)})

    # 4. render in parallel (chunked; order of completion does not matter: files are per image)
    chunks = [jobs[a : a + CHUNK] for a in range(0, len(jobs), CHUNK)]
    total = len(jobs)
    t0 = time.perf_counter()
    progress(0, total)
    done = 0
    if workers == 1:
        _init_worker(idents, size, seed, style)
        for chunk in chunks:
            done += _render_chunk(chunk)
            progress(done, total)
    else:
        ctx = get_context("fork") if sys.platform.startswith("linux") else get_context()
        with ctx.Pool(workers, initializer=_init_worker, initargs=(idents, size, seed, style, os.getpid())) as pool:
            for n in pool.imap_unordered(_render_chunk, chunks):
                done += n
                progress(done, total)
    seconds = time.perf_counter() - t0
    rate = total / seconds * 60 if seconds > 0 else float("inf")

    # 5. annotation files
    def write(path: Path, lines: list[str]) -> None:
        path.write_text("\n".join(lines) + "\n")

    write(celeba / "list_attr_celeba.txt", [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)]
          + [name + "".join(f" {2 * int(v) - 1:2d}" for v in lab) for name, _, lab in rows])
    write(celeba / "identity_CelebA.txt", [f"{name} {i + 1}" for name, i, _ in rows])
    write(celeba / "list_eval_partition.txt", [f"{name} {partition[i]}" for name, i, _ in rows])
    (reg_dir / "regions.json").write_text(json.dumps({
        "format": "one 8-bit grayscale PNG per image, same size and stem as the image; bit k set where attribute k can change",
        "bits": REGION_BITS,
        "values": {name: 1 << bit for name, bit in REGION_BITS.items()},
        "dilation": "each region is dilated by 1 + ceil(3 * blur sigma) pixels so it covers the blurred edit",
    }, indent=1) + "\n")
    write(lfw_root / "pairs.txt", pair_lines)
    for fname, lines in dev.items():
        write(lfw_root / fname, lines)
    lfw_rows = [(name.replace("_", " "), j + 1, lfw_labels[i][j], lfw_people[i].identity)
                for i, name in enumerate(names) for j in range(int(lfw_counts[i]))]
    write_lfw_attributes(lfw_root, lfw_rows, seed)
    RenderRecords(seed=seed, size=size, style=style, identities=[p.identity for p in people],
                  images={name: (i, k, "".join(str(int(v)) for v in lab))
                          for k, (name, i, lab) in enumerate(rows, start=1)}).write(celeba)

    summary = {
        "software": {"package": "faceaug", "version": _version(), "module": __name__},
        "parameters": {"identities": identities, "images_per_identity": images_per_identity, "size": size,
                       "seed": seed, "lfw_identities": n_lfw, "lfw_pairs_per_fold": pairs_p,
                       "fixed_count": fixed_count,
                       **({"style": style.as_dict()} if style != DEFAULT_STYLE else {}),
                       **({"train_mixing": train_mixing} if train_mixing != 1.0 else {}),
                       **({"extra_test_identities": extra_test_identities} if extra_test_identities else {})},
        "stats_source": load_stats()["source"],
        "stats_file": STATS_PATH.name,
        "celeba": {"images": len(rows), "identities": len(people), "image_size": [size, size],
                   "partition_identities": {str(k): int((partition == k).sum()) for k in range(3)},
                   "partition_images": {str(k): int(counts[partition == k].sum()) for k in range(3)}},
        "lfw": {"images": int(lfw_counts.sum()), "identities": n_lfw, "image_size": [canvas_side(size, "lfw")] * 2,
                "crop_fraction": 0.6, "pairs_per_fold": pairs_p, "dev_train_pairs": n_dev_train, "dev_test_pairs": n_dev_test},
        "rendered_attributes": list(RENDERED_ATTRIBUTES),
        "sampled_only_attributes": [a for a in CELEBA_ATTRIBUTES if a not in RENDERED_ATTRIBUTES],
        "images_rendered": total,
        "seconds": round(seconds, 3),
        "images_per_minute": round(rate, 1),
        "workers": workers,
    }
    traits = {
        "celeba": [dict(p.identity.summary(), images=int(n), partition=int(partition[i]))
                   for i, (p, n) in enumerate(zip(people, counts))],
        "lfw": [dict(p.identity.summary(), name=names[i], images=int(lfw_counts[i])) for i, p in enumerate(lfw_people)],
    }
    # synth.json is deterministic (no timings), so two renders with one seed are byte-identical
    meta = {k: v for k, v in summary.items() if k not in ("seconds", "images_per_minute", "workers")}
    (out / "synth.json").write_text(json.dumps(dict(meta, identity_traits=traits), indent=1) + "\n")
    return summary



def load_regions(path: str | Path) -> dict[str, np.ndarray]:
    """Read a region PNG: {attribute column: HxW bool mask}."""
    with Image.open(path) as im:
        return decode_regions(np.asarray(im.convert("L"), dtype=np.uint8))
