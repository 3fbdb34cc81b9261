"""Combine what benchmarks/gpu_check.sh measured into OUT_DIR/gpu_check.json and print a short table.

    python benchmarks/gpu_summary.py OUT_DIR

Reads OUT_DIR/{env.txt, steps.tsv, peaks.json, sagan.json, verifier.json, shard_loader.json,
augment.json} and the tiny run under OUT_DIR/tiny; whatever is missing (a step that failed) is
reported as missing, never guessed. Every achieved FLOP/s is divided by the bf16 matmul peak
measured in the same check (peaks.json), and the three targets of the "Scale and speed" issue
are judged:

  edit        SaGAN's `edit` at 128 px (paper architecture, bf16): >= 10,000 edited images/s,
              the faster of eager and torch.compile'd (about 10% of the FLOP bound)
  augment     the augmentation step (decode -> edit -> encode -> commit) >= 80% of the raw edit rate
  verifier    the verifier's training step fed by the shard loader >= 90% of the bare step
              (the best loader worker count measured; train_verifier's own stream is shown beside it)

On a CPU dry run (GPU_CHECK_ALLOW_CPU=1) the sizes are tiny and the targets are judged only to
check the plumbing: the JSON says `"dry_run": true`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EDIT_TARGET = 10_000  # edited images/s at 128 px on one H100/H200-class GPU
AUGMENT_TARGET = 0.80  # of the raw edit rate
VERIFIER_TARGET = 0.90  # of the bare training step
DEADLINE_S = 600


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _env(out: Path) -> dict:
    env = {}
    if (out / "env.txt").exists():
        for line in (out / "env.txt").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def _steps(out: Path) -> list[dict]:
    steps = []
    if (out / "steps.tsv").exists():
        for line in (out / "steps.tsv").read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                name, rc, seconds, limit = parts
                steps.append({"name": name, "exit_status": int(rc) if rc.lstrip("-").isdigit() else rc,
                              "seconds": float(seconds), "limit_seconds": int(limit), "ok": rc == "0",
                              "log": f"logs/{name}.log"})
    return steps


def _tiny(out: Path) -> dict | None:
    run = out / "tiny"
    if not run.exists():
        return None
    timings = _load(run / "timings.json") or {}
    devices = sorted({d for p in run.rglob("training.json") if (d := (_load(p) or {}).get("device"))})
    return {"report": str(run / "report.html") if (run / "report.html").exists() else None,
            "stages_seconds": timings.get("stages_seconds"), "verifier_devices": devices}


class Summary:
    def __init__(self, bf16_peak: float | None):
        self.peak = bf16_peak
        self.rows: list[dict] = []

    def add(self, name: str, source: str, images_per_s: float | None, flops_per_image: float | None = None, **extra):
        achieved = images_per_s * flops_per_image if images_per_s and flops_per_image else None
        self.rows.append({"name": name, "source": source, "images_per_s": images_per_s, "flops_per_image": flops_per_image,
                          "achieved_flops": achieved,
                          "fraction_of_bf16_peak": achieved / self.peak if achieved and self.peak else None, **extra})


def _target(name: str, goal: str, value, threshold, detail: str, unit: str) -> dict:
    return {"name": name, "target": goal, "value": value, "threshold": threshold, "unit": unit,
            "met": None if value is None else bool(value >= threshold), "detail": detail}


def summarise(out: Path) -> dict:
    env = _env(out)
    peaks = _load(out / "peaks.json")
    sagan, verifier = _load(out / "sagan.json"), _load(out / "verifier.json")
    loader, augment = _load(out / "shard_loader.json"), _load(out / "augment.json")
    device = env.get("device") or (peaks or {}).get("device")
    peak = (peaks or {}).get("matmul_peak_flops", {})
    s = Summary(peak.get("bf16"))
    targets = []

    # SaGAN: training and editing
    edit_best = edit_detail = None
    if sagan and sagan.get("runs"):
        run = sagan["runs"][0]
        cfg, prec = run["config"], run["precision"]
        tr, ed = run.get("training"), run["editing"]
        size = 128 if cfg == "paper" else None
        label = f"{cfg}{' 128 px' if size else ''}, {prec}"
        if tr:
            per_image = tr["flops_per_iteration"] / max(tr["images_per_s"] * tr["seconds_per_iteration"], 1e-9)
            s.add(f"SaGAN training iteration ({label}; 3 D + 1 G updates)", "sagan.json", tr["images_per_s"], per_image,
                  iterations_per_s=tr["iterations_per_s"])
        batch = ed.get("batch")
        f = ed["flops_per_image"]
        s.add(f"SaGAN edit(), CPU in/out ({label}, batch {batch})", "sagan.json", ed["images_per_s"], f)
        s.add(f"SaGAN generator on the device ({label}, batch {batch})", "sagan.json", ed.get("generator_images_per_s"), f)
        candidates = [("eager", ed["images_per_s"])]
        c = ed.get("compiled")
        if c:
            s.add(f"SaGAN edit(), torch.compile ({c['mode']})", "sagan.json", c["images_per_s"], f,
                  compile_seconds=c["compile_seconds"], speedup=c["compile_speedup"])
            s.add("SaGAN generator on the device, torch.compile", "sagan.json", c["generator_images_per_s"], f,
                  speedup=c["generator_compile_speedup"])
            candidates.append(("torch.compile (the pipeline does not compile)", c["images_per_s"]))
        how, edit_best = max(candidates, key=lambda kv: kv[1])
        bound = peak["bf16"] / f if peak.get("bf16") else None
        edit_detail = (f"edit() with CPU images in and out, batch {batch}, {how}"
                       + (f"; {edit_best / bound:.1%} of the FLOP bound ({bound:,.0f} img/s at the bf16 peak)" if bound else "")
                       + ("" if size == 128 else f"; config {cfg}, not 128 px"))
    targets.append(_target("edit", f">= {EDIT_TARGET:,} edited images/s at 128 px", edit_best, EDIT_TARGET,
                           edit_detail or "sagan.json missing", "images/s"))

    # verifier
    if verifier and verifier.get("runs"):
        for run in verifier["runs"]:
            tr, em = run["training"], run["embedding"]
            s.add(f"verifier training step ({run['size']} px, {verifier['precision']}, batch {run['train_batch']})",
                  "verifier.json", tr["images_per_s"], tr["flops_per_image"])
            s.add(f"verifier embedding, flip-averaged ({run['size']} px, {verifier['embedding_precision']}, batch {run['embed_batch']})",
                  "verifier.json", em["images_per_s"], em["flops_per_image"])

    # shard loader feeding the verifier
    fed_value = fed_detail = None
    if loader and loader.get("sizes"):
        size, r = next(iter(loader["sizes"].items()))
        f = r["flops_per_img"]
        for w, v in r["loader_img_s"].items():
            s.add(f"shard loader alone ({size} px, {_workers(w)})", "shard_loader.json", v)
        s.add(f"verifier step, bare ({size} px, {loader.get('precision', '')}, batch {loader['machine']['batch']})",
              "shard_loader.json", r["train_img_s"], f)
        by_w = r.get("fed_train_img_s_by_workers") or {"0": r["fed_train_img_s"]}
        for w, v in by_w.items():
            s.add(f"verifier step fed by the loader ({_workers(w)})", "shard_loader.json", v, f,
                  fraction_of_bare=v / r["train_img_s"])
        for w, v in (r.get("verifier_stream_img_s_by_workers") or {}).items():
            s.add(f"verifier step fed by train_verifier's stream ({_workers(w)})", "shard_loader.json", v, f,
                  fraction_of_bare=v / r["train_img_s"])
        best_w, best = max(by_w.items(), key=lambda kv: kv[1])
        fed_value = best / r["train_img_s"]
        stream = r.get("verifier_stream_img_s_by_workers") or {}
        fed_detail = (f"{_rate(best)} of {_rate(r['train_img_s'])} img/s with {_workers(best_w)} at {size} px"
                      + "".join(f"; train_verifier's own stream ({_workers(w)}): {v / r['train_img_s']:.0%}" for w, v in stream.items())
                      + "".join(f"; train_verifier's own stream ({_workers(w)}) failed: {e}" for w, e in (r.get("verifier_stream_errors") or {}).items()))
    targets.append(_target("verifier", f"verifier training fed by the shard loader >= {VERIFIER_TARGET:.0%} of the bare step",
                           fed_value, VERIFIER_TARGET, fed_detail or "shard_loader.json missing", "fraction"))

    # augmentation
    aug_value = aug_detail = None
    if augment:
        f = augment.get("flops_per_edit")
        px = augment.get("image_size")
        s.add(f"augmentation: raw edit() ({px} px, batch {augment['batch']})", "augment.json", augment["raw_edit_images_per_s"], f)
        s.add("augmentation: edit inside the step", "augment.json", augment["step_edit_images_per_s"], f)
        s.add(f"augmentation step: decode -> edit -> encode -> commit ({augment['codec_threads']} codec threads)",
              "augment.json", augment["pipeline_images_per_s"], f)
        s.add(f"PNG decode ({augment['codec_threads']} threads)", "augment.json", augment["decode_images_per_s"])
        s.add(f"PNG encode ({augment['codec_threads']} threads)", "augment.json", augment["encode_images_per_s"])
        aug_value = augment["pipeline_fraction_of_raw_edit"]
        aug_detail = (f"{_rate(augment['pipeline_images_per_s'])} of {_rate(augment['raw_edit_images_per_s'])} edited img/s "
                      f"({augment['edited_images']:,} edits at {px} px); the codec bound is "
                      f"{_rate(augment['overlap_bound_images_per_s'])} img/s ({augment['pipeline_fraction_of_bound']:.0%} of it reached)")
    targets.append(_target("augment", f"augmentation step >= {AUGMENT_TARGET:.0%} of the raw edit rate", aug_value,
                           AUGMENT_TARGET, aug_detail or "augment.json missing", "fraction"))

    steps = _steps(out)
    total = float(env["total_seconds"]) if "total_seconds" in env else sum(st["seconds"] for st in steps)
    dry = device != "cuda"
    return {
        "device": device, "dry_run": dry,
        "note": ("CPU dry run at tiny sizes (GPU_CHECK_ALLOW_CPU=1): it checks the plumbing; its figures say nothing "
                 "about the targets") if dry else "measured on the GPU",
        "gpu": (peaks or {}).get("gpu"), "device_name": (peaks or {}).get("device"), "torch": (peaks or {}).get("torch"),
        "cpus": (peaks or {}).get("cpus"), "matmul_n": (peaks or {}).get("matmul_n"),
        "matmul_peak_flops": {"bf16": peak.get("bf16"), "fp32": peak.get("fp32")},
        "measurements": s.rows, "targets": targets,
        "steps": steps, "all_steps_ok": bool(steps) and all(st["ok"] for st in steps),
        "total_seconds": total, "within_10_minutes": total <= DEADLINE_S,
        "tiny_run": _tiny(out), "env": env,
    }


def _workers(w) -> str:
    w = int(w)
    return "in-process" if w == 0 else f"{w} worker{'s' if w > 1 else ''}"


def _rate(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _flops(v) -> str:
    if v is None:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if v >= scale:
            return f"{v / scale:,.1f} {unit}"
    return f"{v:,.0f} "


def table(result: dict) -> str:
    lines = []
    peak = result["matmul_peak_flops"]
    head = f"GPU check on {result['device_name'] or '?'} ({result['device']})"
    if result["dry_run"]:
        head += " -- CPU DRY RUN at tiny sizes: plumbing only, not a measurement of the targets"
    lines.append(head)
    lines.append(f"matmul peak ({result['matmul_n']}^2): bf16 {_flops(peak['bf16'])}FLOP/s, fp32 {_flops(peak['fp32'])}FLOP/s; "
                 f"wall time {result['total_seconds']:.0f} s ({'within' if result['within_10_minutes'] else 'OVER'} 10 minutes)")
    lines.append("")
    w = max([len(r["name"]) for r in result["measurements"]] + [20])
    lines.append(f"| {'measurement':{w}s} | {'images/s':>10s} | {'FLOP/image':>11s} | {'FLOP/s':>11s} | {'of bf16 peak':>12s} |")
    lines.append(f"|{'-' * (w + 2)}|{'-' * 12}|{'-' * 13}|{'-' * 13}|{'-' * 14}|")
    for r in result["measurements"]:
        frac = r["fraction_of_bf16_peak"]
        lines.append(f"| {r['name']:{w}s} | {_rate(r['images_per_s']):>10s} | {_flops(r['flops_per_image']):>11s} | "
                     f"{_flops(r['achieved_flops']):>11s} | {('-' if frac is None else f'{frac:.1%}'):>12s} |")
    lines.append("")
    lines.append("targets (CPU DRY RUN: judged only to check the plumbing):" if result["dry_run"] else "targets:")
    for t in result["targets"]:
        state = "missing" if t["met"] is None else ("met" if t["met"] else "NOT met")
        value = "-" if t["value"] is None else (f"{_rate(t['value'])} img/s" if t["unit"] == "images/s" else f"{t['value']:.1%}")
        lines.append(f"  [{state:7s}] {t['target']}: {value}")
        lines.append(f"            {t['detail']}")
    lines.append("")
    steps = ", ".join(f"{st['name']} {st['seconds']:.0f}s" + ("" if st["ok"] else f" (FAILED: {st['exit_status']})")
                      for st in result["steps"])
    lines.append(f"steps: {steps or 'none recorded'}")
    tiny = result.get("tiny_run")
    if tiny:
        lines.append(f"tiny run: report {'written' if tiny['report'] else 'MISSING'}, verifiers on {', '.join(tiny['verifier_devices']) or '?'}"
                     + (f", {tiny['stages_seconds'].get('total', 0):.0f} s in stages" if tiny.get("stages_seconds") else ""))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", help="the directory benchmarks/gpu_check.sh wrote")
    args = ap.parse_args()
    out = Path(args.out_dir)
    if not out.is_dir():
        sys.exit(f"{out}: no such directory (run benchmarks/gpu_check.sh {out} first)")
    result = summarise(out)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"\nwrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
