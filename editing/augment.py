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

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.compute as pc
import torch

from editing._training import decode_image
from editing.base import Editor
from pipeline.attributes import index_of
from pipeline.images import encode_png
from pipeline.shards import ShardStore, ensure_resumable


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    return ((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def augment_attribute(
    editor: Editor,
    attribute: str,
    originals: str,
    out: str,
    *,
    rows_per_shard: int = 1024,
    batch_size: int = 64,
    threads: int = 2,
    metadata: dict | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Write `out` (a shard dataset) with original/added/removed triples for every train original."""
    source = ShardStore(originals)
    table = source.read_table(filter_split="train")
    table = table.filter(pc.equal(table.column("edit_kind"), "original"))
    table = table.sort_by("sample_id")
    n = table.num_rows
    key = {"attribute": attribute, "editor": editor.name, "editor_version": editor.version,
           "editor_checkpoint": editor.checkpoint_id, "source_rows": n, "rows_per_shard": rows_per_shard}
    ensure_resumable(out, key)  # a retrained editor must not be mixed with its predecessor's edits
    store = ShardStore(out, metadata={"dataset": f"aug-{attribute}", "key": key, **(metadata or {})})
    store.cleanup_orphans()
    column = index_of(attribute)
    shards = range(0, n, rows_per_shard)
    started = time.perf_counter()
    edit_seconds, made = 0.0, 0
    todo = [(k, first) for k, first in enumerate(shards) if not store.has(f"part-{k:05d}")]
    reused = len(shards) - len(todo)
    done = sum(min(rows_per_shard, n - first) for k, first in enumerate(shards) if store.has(f"part-{k:05d}"))

    def decode_rows(first: int) -> tuple[list[dict], list[np.ndarray]]:
        rows = table.slice(first, rows_per_shard).to_pylist()
        return rows, [decode_image(r["image"]) for r in rows]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        # Decoding of the next shard and PNG encoding of finished batches run in threads
        # (PIL releases the GIL) while the editor works on the next batch.
        upcoming = pool.submit(decode_rows, todo[0][1]) if todo else None
        for i_todo, (k, first) in enumerate(todo):
            rows, pixels = upcoming.result()
            upcoming = pool.submit(decode_rows, todo[i_todo + 1][1]) if i_todo + 1 < len(todo) else None
            encoded: dict[str, list] = {"added": [], "removed": []}
            for i in range(0, len(rows), batch_size):
                x = torch.from_numpy(np.stack(pixels[i : i + batch_size])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
                t0 = time.perf_counter()
                for kind in ("added", "removed"):
                    result = editor.edit(x, editor.targets_for(kind, len(x)))
                    arrays = _to_uint8(result.images)
                    encoded[kind].extend(pool.submit(encode_png, a) for a in arrays)
                edit_seconds += time.perf_counter() - t0
            out_rows = []
            for i, row in enumerate(rows):
                src = row["source_image_id"]
                out_rows.append({**row})
                for kind in ("added", "removed"):
                    attrs = list(row["attributes"])
                    attrs[column] = 1 if kind == "added" else 0
                    out_rows.append({
                        **row, "sample_id": f"{src}/{attribute}/{kind}", "image": encoded[kind][i].result(),
                        "attribute_edited": attribute, "edit_kind": kind, "attributes": attrs,
                        "editor": editor.name, "editor_version": editor.version, "editor_checkpoint": editor.checkpoint_id,
                    })
            store.write_shard(f"part-{k:05d}", out_rows, shard_metadata={"first_input_row": first, "input_rows": len(rows)})
            done += len(rows)
            made += 2 * len(rows)
            elapsed = time.perf_counter() - started
            progress(f"  augment {attribute}: {done}/{n} source images ({made / max(elapsed, 1e-9):.0f} edited img/s)")
    store.write_summary()
    elapsed = time.perf_counter() - started
    return {
        "attribute": attribute, "source_images": n, "rows": store.num_rows(), "shards": len(shards), "shards_reused": reused,
        "edited_images": made, "seconds": elapsed, "pipeline_images_per_s": made / elapsed if made else None,
        "edit_images_per_s": made / edit_seconds if edit_seconds else None,
    }


def augment_stage(cfg, attribute: str, *, device: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Augment the run's train originals with its trained editor for `attribute` -> <run>/shards/aug-<attribute>."""
    import json

    from editing.registry import get_plugin
    from editing.training import default_device, editor_dir, originals_dir

    editor = get_plugin(cfg.editor.name).editor.load(editor_dir(cfg, attribute), device=device or default_device())
    out = Path(cfg.output_dir) / "shards" / f"aug-{attribute}"
    summary = augment_attribute(editor, attribute, str(originals_dir(cfg)), str(out), rows_per_shard=cfg.data.shard_rows,
                                metadata={"config": json.loads(cfg.to_json())}, progress=progress)
    cfg.save(out)
    if summary["edited_images"]:
        summary["pipeline_fraction_of_edit_throughput"] = summary["pipeline_images_per_s"] / summary["edit_images_per_s"]
    (out / "augment_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
