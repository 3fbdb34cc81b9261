"""Prepare data: render or check the source trees, then ingest them into Parquet shards.

This is the only stage that reads the CelebA/LFW trees. It decodes each image once,
applies the paper's preprocessing (aligned crop, resize; see `pipeline.images`) and
stores the result losslessly in two shard datasets under the run directory:

    <run>/shards/originals/   CelebA-format images, train and test splits (the baseline arm)
    <run>/shards/lfw/         LFW images, for the pairs protocol

Everything downstream (editors, augmentation, verifier, evaluation) reads shards, so the
data path runs one way. Shards are deterministic slices of a sorted image list and are
committed atomically, so an interrupted ingest resumes where it stopped, with no row
written twice and none lost.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.atomic import write_json_atomic
from pipeline.config import RunConfig
from pipeline.layout import RunLayout
from pipeline.images import BadImageError, ImageReport, encode_png, load_mask, load_rgb, preprocess, preprocess_regions
from pipeline.workers import CrashIsolatingPool

SYNTH_DONE = "synth.json"


@dataclass(frozen=True)
class Sources:
    celeba_dir: Path
    lfw_dir: Path


def resolve_sources(cfg: RunConfig, progress: Callable[[str], None] = print) -> Sources:
    """Render the synthetic benchmark if the config asks for it (once), or point at the real trees."""
    if cfg.data.source == "celeba":
        return Sources(Path(cfg.data.celeba_dir), Path(cfg.data.lfw_dir))
    from pipeline.synth import render_benchmark

    s = cfg.data.synthetic
    root = RunLayout(cfg).synthetic
    if not (root / SYNTH_DONE).exists():
        progress(f"rendering the synthetic benchmark into {root}")
        from pipeline.synth import Style

        render_benchmark(
            root, identities=s.identities, images_per_identity=s.images_per_identity, size=s.render_size,
            seed=s.seed, lfw_identities=s.lfw_identities, lfw_pairs_per_fold=s.lfw_pairs_per_fold,
            fixed_count=s.fixed_count, workers=cfg.workers or None, overwrite=True,
            style=Style(**s.style.model_dump()), train_mixing=s.train_mixing,
            extra_test_identities=s.extra_test_identities,
        )
    else:
        progress(f"reusing the synthetic benchmark in {root}")
    return Sources(root / "celeba", root / "lfw")


def _encode_one(args: tuple[str, str, int, float, str | None]) -> tuple[str, bytes | None, bytes | None, dict, tuple[str, str] | None]:
    """Worker: load, preprocess and PNG-encode one image (and its regions, if any).

    Returns (key, png, regions_png, conversions, error), error = (bad file, reason) or None."""
    key, path, size, crop, regions_path = args
    report = ImageReport()
    try:
        arr = preprocess(load_rgb(path, report), size, crop)
        regions = None
        if regions_path is not None:
            regions = encode_png(preprocess_regions(load_mask(regions_path), size, crop))
    except BadImageError as exc:
        return key, None, None, report.converted, (exc.path, exc.reason)
    return key, encode_png(arr), regions, report.converted, None


def _encode_crashed(job: tuple, reason: str) -> tuple:
    return job[0], None, None, {}, (job[1], reason)


def ingest_rows(
    store_path: str,
    items: list[dict],
    *,
    size: int,
    crop_fraction: float,
    shard_rows: int,
    on_bad_image: str,
    metadata: dict,
    workers: int,
    label: str,
    progress: Callable[[str], None] = print,
) -> dict:
    """Write `items` (dicts with 'path' and the row's other fields) as deterministic shards."""
    from pipeline.shards import ShardStore, ensure_resumable

    ensure_resumable(str(store_path), metadata["key"])
    store = ShardStore(str(store_path), metadata=metadata)
    store.cleanup_orphans()
    report = ImageReport()
    shards = [items[i : i + shard_rows] for i in range(0, len(items), shard_rows)]
    done = skipped_shards = 0
    start = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    with CrashIsolatingPool(workers) as pool:
        for index, chunk in enumerate(shards):
            name = f"part-{index:05d}"
            # Reused only when its checksum verifies; a corrupted shard is reported and written again.
            if store.has(name, progress=progress):
                skipped_shards += 1
                done += len(chunk)
                continue
            jobs = [(it["sample_id"], it["path"], size, crop_fraction, it.get("regions_path")) for it in chunk]
            results = pool.map(_encode_one, jobs, _encode_crashed)
            rows = []
            for item, (key, png, regions, converted, error) in zip(chunk, results):
                for conversion, n in converted.items():
                    report.converted[conversion] = report.converted.get(conversion, 0) + n
                if error is not None:
                    if on_bad_image == "error":
                        raise BadImageError(*error)
                    report.skipped.append(error)
                    continue
                row = {k: v for k, v in item.items() if k not in ("path", "regions_path")}
                row.update(image=png, image_format="png", height=size, width=size, regions=regions)
                rows.append(row)
            store.write_shard(name, rows, shard_metadata={"first_item": index * shard_rows, "items": len(chunk), "skipped": len(chunk) - len(rows)})
            done += len(chunk)
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress(f"  {label}: {done}/{len(items)} images ({rate:.0f} img/s)")
    store.write_summary()
    return {
        "items": len(items), "rows": store.num_rows(), "shards": len(shards),
        "shards_reused": skipped_shards, "images": report.as_dict(),
    }


def prepare_data(cfg: RunConfig, progress: Callable[[str], None] = print) -> dict:
    """Render/check the sources and ingest them into `<run>/shards/{originals,lfw}`; returns the data summary."""
    from pipeline.celeba import CelebA, official_split, paper_split
    from pipeline.lfw import LFW

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    sources = resolve_sources(cfg, progress)
    celeba = CelebA.open(sources.celeba_dir)
    lfw = LFW.open(sources.lfw_dir)
    split = (paper_split(celeba, test_identities=cfg.data.test_identities, valid_identities=cfg.data.valid_identities)
             if cfg.data.split == "paper" else official_split(celeba))
    split.check_disjoint()
    part_of = {image_id: "train" for image_id in split.train}
    part_of.update({image_id: "test" for image_id in split.test})
    part_of.update({image_id: "valid" for image_id in split.valid})

    by_id = {r.image_id: r for r in celeba.records}
    regions_root = Path(sources.celeba_dir) / "attribute_regions"  # the synthetic benchmark's ground truth

    region_files = {p.name for p in regions_root.iterdir()} if regions_root.is_dir() else set()

    def regions_of(image_id: str) -> str | None:
        name = f"{Path(image_id).stem}.png"
        return str(regions_root / name) if name in region_files else None

    items = [
        {
            "sample_id": f"{image_id}/original", "path": str(celeba.image_path(image_id)),
            "identity": by_id[image_id].identity, "source_image_id": image_id, "split": part_of[image_id],
            "attribute_edited": None, "edit_kind": "original", "attributes": list(by_id[image_id].attributes),
            "editor": None, "editor_version": None, "editor_checkpoint": None,
            "regions_path": regions_of(image_id),
        }
        for image_id in sorted(part_of)
    ]
    key = {"source": str(sources.celeba_dir), "split": split.name, "test_identities": cfg.data.test_identities,
           **({"valid_identities": cfg.data.valid_identities} if cfg.data.valid_identities else {}),
           "image_size": cfg.data.image_size, "on_bad_image": cfg.data.on_bad_image, "shard_rows": cfg.data.shard_rows}
    meta = {"dataset": "originals", "key": key, "config": json.loads(cfg.to_json())}
    progress(f"ingesting {len(items)} CelebA-format images at {cfg.data.image_size}px")
    originals = ingest_rows(
        RunLayout(cfg).originals, items, size=cfg.data.image_size, crop_fraction=1.0,
        shard_rows=cfg.data.shard_rows, on_bad_image=cfg.data.on_bad_image, metadata=meta,
        workers=cfg.workers, label="originals", progress=progress,
    )

    people = sorted(lfw.people())
    person_index = {name: i for i, name in enumerate(people)}
    zeros = [0] * len(CELEBA_ATTRIBUTES)  # LFW has no attribute labels in the CelebA sense
    wanted = {p for pair in lfw.pairs for p in (pair.left, pair.right)}
    attributes_file = lfw_attributes_file(cfg, sources)
    if attributes_file is not None:  # the cross-attribute protocol pairs every image the attribute file scores
        from pipeline.lfw_attributes import read_lfw_attributes

        on_disk = set(lfw.images())
        wanted |= {image for image in read_lfw_attributes(attributes_file).images if image in on_disk}
    lfw_items = [
        {
            "sample_id": rel, "path": str(lfw.image_path(rel)), "identity": person_index[rel.split("/")[0]],
            "source_image_id": rel, "split": "test", "attribute_edited": None, "edit_kind": "original",
            "attributes": zeros, "editor": None, "editor_version": None, "editor_checkpoint": None,
        }
        for rel in sorted(wanted)
    ]
    key = {"source": str(sources.lfw_dir), "image_size": cfg.data.image_size, "crop_fraction": cfg.data.lfw_crop_fraction,
           "on_bad_image": cfg.data.on_bad_image, "shard_rows": cfg.data.shard_rows}
    if attributes_file is not None:
        key["images"] = "pairs and attribute file"
    meta = {"dataset": "lfw", "key": key, "config": json.loads(cfg.to_json())}
    progress(f"ingesting {len(lfw_items)} LFW images (those in the pairs{' and the attribute file' if attributes_file else ''})")
    lfw_summary = ingest_rows(
        RunLayout(cfg).lfw, lfw_items, size=cfg.data.image_size, crop_fraction=cfg.data.lfw_crop_fraction,
        shard_rows=cfg.data.shard_rows, on_bad_image=cfg.data.on_bad_image, metadata=meta,
        workers=cfg.workers, label="lfw", progress=progress,
    )
    summary = {
        "celeba_dir": str(sources.celeba_dir), "lfw_dir": str(sources.lfw_dir), "split": split.name,
        "train": {"images": len(split.train), "identities": len(split.train_identities)},
        "test": {"images": len(split.test), "identities": len(split.test_identities)},
        "valid": {"images": len(split.valid)},
        "originals": originals, "lfw": {**lfw_summary, "pairs": len(lfw.pairs), "folds": lfw.folds},
        "skipped_images": originals["images"]["skipped"] + lfw_summary["images"]["skipped"],
    }
    write_json_atomic(summary, RunLayout(cfg).data_summary)
    return summary


def benchmark_of(originals: str) -> Path | None:
    """The CelebA-format tree a run's originals were ingested from (from the shard dataset's metadata), or None."""
    from pipeline.shards import ShardStore

    source = (ShardStore(originals).metadata().get("key") or {}).get("source")
    return Path(source) if source else None


def lfw_attributes_file(cfg: RunConfig, sources: Sources | None = None) -> Path | None:
    """The LFW attribute file the run uses: data.lfw_attributes, else <LFW tree>/lfw_attributes.txt if present."""
    from pipeline.lfw_attributes import ATTRIBUTES_FILE

    if cfg.data.lfw_attributes is not None:
        path = Path(cfg.data.lfw_attributes)
        if not path.is_file():
            raise FileNotFoundError(f"data.lfw_attributes: {path} does not exist")
        return path
    sources = sources or resolve_sources(cfg, progress=lambda m: None)
    path = Path(sources.lfw_dir) / ATTRIBUTES_FILE
    return path if path.is_file() else None
