"""Augmentation throughput: the whole step (decode, edit, encode, write shards) vs. the editor's raw `edit`.

    python benchmarks/augment_throughput.py --run data/runs/demo --attribute eyeglasses

Runs the run's trained editor over its train originals into a temporary shard dataset and
reports edited images/s for the whole step and for `edit` alone on the same batch size; the
step should keep >= 80% of the raw rate.

On a CPU-only machine the edit and the PNG decoding/encoding share the same cores, so the
step cannot reach the raw edit rate there: the benchmark also measures decode and encode
rates on all cores and prints the bound they imply when the work is perfectly overlapped,
1 / (1/edit + 1/encode + 1/(2 decode)) edited images/s (each source image is decoded once
and yields two edits). With the edit on an accelerator, encoding overlaps it instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from editing.originals import load_originals
from editing.augment import augment_attribute
from editing.registry import get_plugin
from pipeline.images import batch_to_model_range, decode_rgb, encode_png
from pipeline.shards import ShardStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="data/runs/demo")
    ap.add_argument("--attribute", default="eyeglasses")
    ap.add_argument("--editor", default="sagan")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    editor = get_plugin(args.editor).editor.load(f"{args.run}/editors/{args.editor}-{args.attribute}")
    originals = f"{args.run}/shards/originals"

    # raw edit throughput on the same images and batch size (both directions, as augmentation does)
    data = load_originals([originals], "train", limit=2048)
    x_all = batch_to_model_range(data.images)
    editor.edit(x_all[: args.batch], torch.ones(args.batch))  # warm-up
    t = time.perf_counter()
    n = 0
    for i in range(0, len(x_all), args.batch):
        x = x_all[i : i + args.batch]
        for kind in ("added", "removed"):
            editor.edit(x, editor.targets_for(kind, len(x)))
            n += len(x)
    raw = n / (time.perf_counter() - t)

    # PNG decode and encode rates with every core busy (the pipeline's thread pool does both)
    cores = os.cpu_count() or 1
    blobs = ShardStore(originals).read_table(filter_split="train").column("image").to_pylist()[:2048]
    with ThreadPoolExecutor(max_workers=cores) as pool:
        t = time.perf_counter()
        pixels = list(pool.map(lambda b: decode_rgb(b, "benchmark sample"), blobs))
        decode = len(blobs) / (time.perf_counter() - t)
        arrays = [np.ascontiguousarray(a) for a in pixels]
        t = time.perf_counter()
        list(pool.map(encode_png, arrays))
        encode = len(arrays) / (time.perf_counter() - t)
    on_cpu = torch.device(getattr(editor, "device", "cpu")).type == "cpu"
    bound = 1 / (1 / raw + 1 / encode + 1 / (2 * decode)) if on_cpu else raw

    with tempfile.TemporaryDirectory() as tmp:
        summary = augment_attribute(editor, args.attribute, originals, f"{tmp}/aug", batch_size=args.batch, progress=lambda m: None)
    out = {"attribute": args.attribute, "batch": args.batch, "threads": torch.get_num_threads(),
           "raw_edit_images_per_s": raw, "step_edit_images_per_s": summary["edit_images_per_s"],
           "pipeline_images_per_s": summary["pipeline_images_per_s"],
           "pipeline_fraction_of_raw_edit": summary["pipeline_images_per_s"] / raw, "source_images": summary["source_images"],
           "decode_images_per_s": decode, "encode_images_per_s": encode, "edit_shares_cores_with_codec": on_cpu,
           "overlap_bound_images_per_s": bound, "pipeline_fraction_of_bound": summary["pipeline_images_per_s"] / bound}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
