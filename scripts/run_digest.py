"""A run directory's results, reduced to what must not change when the code is reorganised.

    python scripts/run_digest.py data/runs/tiny > before.json
    ... change the code, run the same profile into another directory ...
    python scripts/run_digest.py /tmp/after > after.json
    python scripts/run_digest.py --compare before.json after.json     # exit 1 and list what differs

Kept: every shard row's sample id with the sha256 of its image and regions bytes (per dataset),
every editor's evaluation numbers and loss curve, every verifier's loss curve and training
record, results.json, and the report JSON. Dropped: timings, wall-clock rates, timestamps,
absolute paths and software versions, which legitimately differ between two runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

# Keys whose values are times, rates, dates, paths or versions: they differ run to run.
VOLATILE = {"seconds", "train_seconds", "wall_s_this_session", "images_per_s", "generated", "software", "timings",
            "created", "run_dir", "directory", "elapsed", "pipeline_images_per_s", "edit_images_per_s",
            "pipeline_fraction_of_edit_throughput", "stages_seconds", "celeba_dir", "lfw_dir", "source", "output_dir",
            "shard_root", "sources", "config", "edit_seconds", "key"}


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in sorted(obj.items()) if k not in VOLATILE}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 10)
    return obj


def _json(path: Path):
    return _clean(json.loads(path.read_text())) if path.exists() else None


def _shards(root: Path) -> dict:
    import pyarrow.parquet as pq

    from pipeline.samples import image_bytes  # the image bytes of any schema version, so digests compare across one

    out = {}
    for manifest in sorted(root.glob("*/_manifest")):
        rows = []
        for shard in sorted(manifest.parent.glob("*.parquet")):
            table = pq.read_table(shard, columns=["sample_id", "image", "regions", "identity", "split", "attributes"])
            for r, image in zip(table.to_pylist(), image_bytes(table["image"]).to_pylist()):
                rows.append([r["sample_id"], hashlib.sha256(image).hexdigest()[:16],
                             None if r["regions"] is None else hashlib.sha256(r["regions"]).hexdigest()[:16],
                             r["identity"], r["split"], "".join(map(str, r["attributes"]))])
        out[manifest.parent.name] = sorted(rows)
    return out


def digest(run: Path) -> dict:
    run = Path(run)
    editors = {}
    for d in sorted((run / "editors").glob("*")):
        losses = d / "losses.jsonl"
        editors[d.name] = {
            "evaluation": _json(d / "evaluation.json"),
            "losses": [_clean(json.loads(line)) for line in losses.read_text().splitlines()] if losses.exists() else None,
        }
    verifiers = {}
    for d in sorted((run / "verifiers").glob("*/seed-*")):
        verifiers[f"{d.parent.name}/{d.name}"] = _json(d / "training.json")
    return {"shards": _shards(run / "shards"), "editors": editors, "verifiers": verifiers,
            "results": _json(run / "results.json"), "report": _json(run / "report.json")}


def _differences(a, b, where: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in {'the second' if k not in a else 'the first'}")
            else:
                out.extend(_differences(a[k], b[k], f"{where}/{k}"))
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="a run directory, or two digests with --compare")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if not args.compare:
        json.dump(digest(Path(args.paths[0])), sys.stdout, indent=1, sort_keys=True)
        return 0
    first, second = (json.loads(Path(p).read_text()) for p in args.paths)
    diffs = _differences(first, second)
    for line in diffs[:200]:
        print(line)
    counts = {k: len(v) for k, v in first["shards"].items()}
    print(f"{len(diffs)} differences; datasets compared: {counts}; editors: {len(first['editors'])}; "
          f"verifiers: {len(first['verifiers'])}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
