"""What bf16 test embeddings change: every pair set's AUC of one finished verifier, embedded in fp32 (`auto` on a
CPU) and in bf16 autocast (evaluation.precision), and the time each took.

    python benchmarks/embedding_precision.py data/runs/evidence-1000 baseline 0 \\
        --set data.synthetic.extra_test_identities=800

Computes both (no embedding cache is read or written). Run it on a verifier of the run whose evaluation
precision is being decided, before any arm of it is scored: it reads one arm, never a difference between arms.
The speed of each precision is `benchmarks/verifier_speed.py --embed-precision`.
"""

from __future__ import annotations

import argparse
import time

from pipeline.config import load_config
from pipeline.layout import RunLayout
from recognition.evaluation import pair_sets
from recognition.experiment import embed_test_sets
from recognition.metrics import auc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("arm")
    ap.add_argument("seed", type=int)
    ap.add_argument("--profile", default="evidence")
    ap.add_argument("--set", action="append", default=[], help="config overrides of the run, as for faceaug")
    args = ap.parse_args()
    aucs = {}
    for precision in ("auto", "bf16"):
        cfg = load_config(args.profile, [f"output_dir={args.run}", *args.set, f"evaluation.precision={precision}"])
        started = time.perf_counter()
        emb = embed_test_sets(cfg, RunLayout(cfg).verifier_dir(args.arm, args.seed), precision)
        seconds, n = time.perf_counter() - started, len(emb["celeba_ids"]) + len(emb["lfw_ids"])
        print(f"{precision}: {n} images in {seconds:.0f} s, {n / seconds:.0f} images/s with their mirrors", flush=True)
        sets, _ = pair_sets(cfg, emb)
        aucs[precision] = {name: auc(ps.scores(emb[f"{ps.test_set}_emb"]), ps.labels)
                          for name, ps in sets.items()}
    for name, fp32 in aucs["auto"].items():
        print(f"{name:45s} fp32 {fp32:.5f}  bf16 {aucs['bf16'][name]:.5f}  bf16 - fp32 {aucs['bf16'][name] - fp32:+.5f}")


if __name__ == "__main__":
    main()
