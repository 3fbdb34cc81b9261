"""Augmentation throughput: the whole step (decode, edit, encode, write shards) vs. the editor's raw `edit`.

    python benchmarks/augment_throughput.py --run data/runs/demo --attribute eyeglasses
    python benchmarks/augment_throughput.py --run RUN --batch 1024 --threads 16 --out augment.json   # a GPU machine

Runs the run's trained editor (on --device: a GPU when there is one) over its train originals
into a temporary shard dataset and reports edited images/s for the whole step and for `edit`
alone on the same batch size; the step should keep >= 80% of the raw rate. --threads is the
step's codec thread pool (editing/augment.py `Augmentation.write(threads=...)`: it decodes the
next shard and PNG-encodes finished batches while the editor works on the next batch), and the
same pool size measures the decode and encode rates; --torch-threads sets torch's own threads.

On a CPU-only machine the edit and the PNG decoding/encoding share the same cores, so the
step cannot reach the raw edit rate there: the benchmark also measures decode and encode
rates on --threads threads and prints the bound they imply when the work is perfectly overlapped,
1 / (1/edit + 1/encode + 1/(2 decode)) edited images/s (each source image is decoded once
and yields two edits). With the edit on an accelerator, encoding overlaps it instead, and
the bound is min(edit, encode, 2 decode).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import FlopCounter, machine, sync  # noqa: E402

from editing.originals import load_originals  # noqa: E402
from editing.augment import augment_attribute  # noqa: E402
from editing.registry import get_plugin  # noqa: E402
from pipeline.images import batch_to_model_range, decode_rgb, encode_png  # noqa: E402
from pipeline.shards import ShardStore, image_bytes  # noqa: E402


def flops_per_edit(editor, size: int) -> float | None:
    """Convolution/matmul FLOPs of one edit, counted on the editor's network (`generator`) in no_grad
    (inference_mode convs bypass the flop formulas); None for an editor without one."""
    net = getattr(editor, "generator", None)
    if net is None:
        return None
    x = torch.zeros(2, 3, size, size)
    try:
        with torch.no_grad(), FlopCounter() as counter:
            net(editor.batch(x, torch.ones(2)), torch.ones(2, device=editor.device, dtype=editor.dtype))
    except Exception:  # a network with another call signature: no FLOP figure
        return None
    return counter.get_total_flops() / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="data/runs/demo")
    ap.add_argument("--attribute", default="eyeglasses")
    ap.add_argument("--editor", default="sagan")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="codec thread pool of the step and of the decode/encode "
                    "measurements (0: the CPU count)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--rows-per-shard", type=int, default=1024, help="source rows per output shard")
    ap.add_argument("--raw-repeats", type=int, default=3, help="passes of the raw edit measurement (median)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="the editor's inference precision")
    ap.add_argument("--out", default=None, help="also write the result JSON here")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    threads = args.threads or os.cpu_count() or 1
    dev = args.device
    editor = get_plugin(args.editor).editor.load(f"{args.run}/editors/{args.editor}-{args.attribute}", device=dev,
                                                 precision=args.precision)
    originals = f"{args.run}/shards/originals"

    # raw edit throughput on the same images and batch size (both directions, as augmentation does)
    data = load_originals([originals], "train", limit=max(2048, 4 * args.batch))
    x_all = batch_to_model_range(data.images)
    size = int(x_all.shape[-1])
    editor.edit(x_all[: args.batch], torch.ones(min(args.batch, len(x_all))))  # warm-up

    def raw_pass() -> float:
        sync(dev)
        t = time.perf_counter()
        n = 0
        for i in range(0, len(x_all), args.batch):
            x = x_all[i : i + args.batch]
            for kind in ("added", "removed"):
                editor.edit(x, editor.targets_for(kind, len(x)))  # returns CPU tensors: synchronised
                n += len(x)
        return n / (time.perf_counter() - t)

    raw_passes = [raw_pass() for _ in range(max(1, args.raw_repeats))]
    raw = statistics.median(raw_passes)

    # PNG decode and encode rates with the step's thread pool (the pipeline's pool does both)
    blobs = image_bytes(ShardStore(originals).read_table(filter_split="train").column("image")).to_pylist()[:2048]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        t = time.perf_counter()
        pixels = list(pool.map(lambda b: decode_rgb(b, "benchmark sample"), blobs))
        decode = len(blobs) / (time.perf_counter() - t)
        arrays = [np.ascontiguousarray(a) for a in pixels]
        t = time.perf_counter()
        list(pool.map(encode_png, arrays))
        encode = len(arrays) / (time.perf_counter() - t)
    on_cpu = torch.device(getattr(editor, "device", "cpu")).type == "cpu"
    bound = 1 / (1 / raw + 1 / encode + 1 / (2 * decode)) if on_cpu else min(raw, encode, 2 * decode)

    with tempfile.TemporaryDirectory() as tmp:
        summary = augment_attribute(editor, args.attribute, originals, f"{tmp}/aug", rows_per_shard=args.rows_per_shard,
                                    batch_size=args.batch, threads=threads, progress=lambda m: None)
    flops = flops_per_edit(editor, size)
    out = {"attribute": args.attribute, "editor": args.editor, "device": dev, "machine": machine(dev),
           "image_size": size, "editor_weights_dtype": str(getattr(editor, "dtype", "")).removeprefix("torch."),
           "batch": args.batch, "threads": torch.get_num_threads(), "codec_threads": threads,
           "rows_per_shard": args.rows_per_shard, "flops_per_edit": flops,
           "raw_edit_images_per_s": raw, "raw_edit_passes_images_per_s": raw_passes,
           "raw_edit_images": len(x_all) * 2, "step_edit_images_per_s": summary["edit_images_per_s"],
           "pipeline_images_per_s": summary["pipeline_images_per_s"], "pipeline_seconds": summary["seconds"],
           "edited_images": summary["edited_images"],
           "pipeline_fraction_of_raw_edit": summary["pipeline_images_per_s"] / raw, "source_images": summary["source_images"],
           "decode_images_per_s": decode, "encode_images_per_s": encode, "edit_shares_cores_with_codec": on_cpu,
           "overlap_bound_images_per_s": bound, "pipeline_fraction_of_bound": summary["pipeline_images_per_s"] / bound,
           "raw_edit_achieved_flops": flops * raw if flops else None,
           "pipeline_achieved_flops": flops * summary["pipeline_images_per_s"] if flops else None}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
