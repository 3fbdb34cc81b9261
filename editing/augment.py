"""Augmentation: run an attribute's editor over every training image and write three samples each.

For attribute A, every train-split original becomes (the paper, section 4.3 and Fig. 8):

    <source>/original     the original pixels, unchanged
    <source>/A/added      the editor's output with target 1 (attribute present)
    <source>/A/removed    the editor's output with target 0 (attribute absent)

An image that already has A is still "added" (edited toward its own attribute, which
the paper notes looks almost the same and saves classifying the image first). Edited
samples keep the source identity, carry the 40-attribute vector after the edit, and
record the editor, its version and its checkpoint id.

Shard k of the output holds the triples of input rows [k*R, (k+1)*R) of the sorted
train originals, so the work is deterministic and resumable: committed shards are
skipped, a killed run leaves at most an orphan that is cleaned up, and no row is
written twice. Decoding and PNG encoding run in a thread pool (PIL releases the GIL)
overlapped with the editor's batches on the device.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import pyarrow.compute as pc
import torch

from editing.base import Editor
from pipeline import faults
from pipeline.attributes import index_of
from pipeline.images import batch_from_model_range, batch_to_model_range, decode_rgb, encode_png
from pipeline.layout import AUGMENT_SUMMARY, RunLayout
from pipeline.shards import ShardStore, ensure_resumable, image_bytes


def train_originals(originals: str):
    """The train-split originals of a shard dataset, sorted by sample id. Read once per process and dataset
    version (every shard job of an attribute, and every attribute, slices the same table)."""
    store = ShardStore(originals)
    return _train_originals(originals, tuple((e.name, e.sha256) for e in store.entries()))


@functools.lru_cache(maxsize=2)
def _train_originals(originals: str, version: tuple):
    table = ShardStore(originals).read_table(filter_split="train")
    return table.filter(pc.equal(table.column("edit_kind"), "original")).sort_by("sample_id")


class Augmentation:
    """One attribute's augmentation dataset: planned once, its shards written by any number of
    workers (each shard is independent and committed atomically), then summarised once."""

    def __init__(self, editor: Editor, attribute: str, originals: str, out: str, *, rows_per_shard: int = 1024,
                 metadata: dict | None = None):
        self.editor, self.attribute, self.out, self.rows_per_shard = editor, attribute, out, rows_per_shard
        self.originals = originals
        self.table = train_originals(originals)
        self.key = {"attribute": attribute, "editor": editor.name, "editor_version": editor.version,
                    "editor_checkpoint": editor.checkpoint_id, "source_rows": self.table.num_rows, "rows_per_shard": rows_per_shard}
        self.store = ShardStore(out, metadata={"dataset": f"aug-{attribute}", "key": self.key, **(metadata or {})})

    @property
    def shards(self) -> range:
        return range(-(-self.table.num_rows // self.rows_per_shard))

    def plan(self) -> list[int]:
        """Check the dataset may be resumed with this editor, remove what a killed writer left
        half-done, and return the shards still to write. Call once, before any writer starts."""
        ensure_resumable(self.out, self.key)  # a retrained editor must not be mixed with its predecessor's edits
        self.store.cleanup_orphans()
        return [k for k in self.shards if not self.store.has(f"part-{k:05d}")]

    def write(self, shards: list[int], *, batch_size: int = 64, threads: int = 2,
              progress: Callable[[str], None] = print) -> dict:
        """Write these shards (skipping any already committed); returns counts and timings."""
        todo = [k for k in shards if not self.store.has(f"part-{k:05d}")]
        started = time.perf_counter()
        edit_seconds, made, done = 0.0, 0, 0
        n, R, column = self.table.num_rows, self.rows_per_shard, index_of(self.attribute)

        def decode_rows(k: int) -> tuple[list[dict], list[np.ndarray]]:
            part = self.table.slice(k * R, R)
            rows = part.to_pylist()
            return rows, [decode_rgb(data, f"{self.originals}: sample {r['sample_id']!r}")
                          for r, data in zip(rows, image_bytes(part.column("image")).to_pylist())]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            # Decoding of the next shard and PNG encoding of finished batches run in threads
            # (PIL releases the GIL) while the editor works on the next batch.
            upcoming = pool.submit(decode_rows, todo[0]) if todo else None
            for i_todo, k in enumerate(todo):
                rows, pixels = upcoming.result()
                upcoming = pool.submit(decode_rows, todo[i_todo + 1]) if i_todo + 1 < len(todo) else None
                encoded: dict[str, list] = {"added": [], "removed": []}
                for i in range(0, len(rows), batch_size):
                    x = batch_to_model_range(torch.from_numpy(np.stack(pixels[i : i + batch_size])).permute(0, 3, 1, 2))
                    t0 = time.perf_counter()
                    sources = [r["source_image_id"] for r in rows[i : i + batch_size]]
                    for kind in ("added", "removed"):
                        result = self.editor.apply(x, self.editor.targets_for(kind, len(x)), sources)
                        encoded[kind].extend(pool.submit(encode_png, a) for a in batch_from_model_range(result.images))
                    edit_seconds += time.perf_counter() - t0
                out_rows = []
                for i, row in enumerate(rows):
                    out_rows.append({**row})
                    for kind in ("added", "removed"):
                        attrs = list(row["attributes"])
                        attrs[column] = 1 if kind == "added" else 0
                        out_rows.append({
                            **row, "sample_id": f"{row['source_image_id']}/{self.attribute}/{kind}",
                            "image": encoded[kind][i].result(), "attribute_edited": self.attribute, "edit_kind": kind,
                            "attributes": attrs, "editor": self.editor.name, "editor_version": self.editor.version,
                            "editor_checkpoint": self.editor.checkpoint_id,
                        })
                faults.point("augment-shard-encoded")
                self.store.write_shard(f"part-{k:05d}", out_rows, shard_metadata={"first_input_row": k * R, "input_rows": len(rows)})
                done += len(rows)
                made += 2 * len(rows)
                elapsed = time.perf_counter() - started
                progress(f"  augment {self.attribute}: shard {k + 1}/{len(self.shards)} ({len(rows)} of {n} source images, "
                         f"{made / max(elapsed, 1e-9):.0f} edited img/s)")
        return {"shards_written": len(todo), "edited_images": made, "seconds": time.perf_counter() - started,
                "edit_seconds": edit_seconds}

    def finish(self, written: list[dict], seconds: float) -> dict:
        """Summarise once every shard is committed; `written` are the `write` results of this run, which took `seconds`."""
        missing = [k for k in self.shards if not self.store.has(f"part-{k:05d}")]
        if missing:
            raise RuntimeError(f"{self.out}: shards {missing} are still missing; write them before finishing")
        self.store.write_summary()
        made = sum(w["edited_images"] for w in written)
        edit_seconds = sum(w["edit_seconds"] for w in written)
        elapsed = seconds
        return {
            "attribute": self.attribute, "source_images": self.table.num_rows, "rows": self.store.num_rows(),
            "shards": len(self.shards), "shards_reused": len(self.shards) - sum(w["shards_written"] for w in written),
            "edited_images": made, "seconds": elapsed, "pipeline_images_per_s": made / elapsed if made else None,
            "edit_images_per_s": made / edit_seconds if edit_seconds else None,
        }


def augment_attribute(editor: Editor, attribute: str, originals: str, out: str, *, rows_per_shard: int = 1024,
                      batch_size: int = 64, threads: int = 2, metadata: dict | None = None,
                      progress: Callable[[str], None] = print) -> dict:
    """Write `out` (a shard dataset) with original/added/removed triples for every train original."""
    started = time.perf_counter()
    job = Augmentation(editor, attribute, originals, out, rows_per_shard=rows_per_shard, metadata=metadata)
    written = job.write(job.plan(), batch_size=batch_size, threads=threads, progress=progress)
    return job.finish([written], time.perf_counter() - started)


def augmentation_for(cfg, attribute: str, *, editor: str | None = None, device: str | None = None) -> Augmentation:
    """The run's augmentation job for `attribute` with `editor` (default: the run's editor): that trained
    editor over the originals -> the layout's aug-<attribute>[@<editor>] dataset."""
    import json

    from editing.train import load_editor

    name = editor or cfg.editor.name
    layout = RunLayout(cfg)
    model = load_editor(cfg, attribute, name, device=device)
    return Augmentation(model, attribute, layout.originals, layout.augmented(attribute, name),
                        rows_per_shard=cfg.data.shard_rows, metadata={"config": json.loads(cfg.for_editor(name).to_json())})


def finish_stage(cfg, job: Augmentation, written: list[dict], seconds: float) -> dict:
    import json

    summary = job.finish(written, seconds)
    if summary["edited_images"]:
        summary["pipeline_fraction_of_edit_throughput"] = summary["pipeline_images_per_s"] / summary["edit_images_per_s"]
    job.store.write_json("config.json", json.loads(cfg.for_editor(job.editor.name).to_json()))
    job.store.write_json(AUGMENT_SUMMARY, summary)
    return summary


def augment_stage(cfg, attribute: str, *, editor: str | None = None, device: str | None = None,
                  progress: Callable[[str], None] = print) -> dict:
    """Augment the run's train originals with a trained editor for `attribute`, all shards in this process.
    (The Prefect flow fans the shards of `augmentation_for(...).plan()` out to workers instead.)"""
    started = time.perf_counter()
    job = augmentation_for(cfg, attribute, editor=editor, device=device)
    written = job.write(job.plan(), progress=progress)
    return finish_stage(cfg, job, [written], time.perf_counter() - started)
