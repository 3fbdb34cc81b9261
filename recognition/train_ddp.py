"""One verifier arm on several processes (GPUs, or CPU cores) with DistributedDataParallel:

    torchrun --nproc-per-node N -m recognition.train_ddp --profile evidence --arm baseline --seed 0 [--set key=value ...]

Each process trains on its interleaved share of every global batch of `verifier.batch_size` (so N
processes together see exactly the batches one process would), gradients are averaged across
processes, and rank 0 writes the checkpoints and the finished model into the arm's usual directory
(`<run>/verifiers/<arm>/seed-<s>/`), where `faceaug evaluate` and the report read it like any other.
Killed and started again, it resumes from the last checkpoint. One process per GPU (NCCL) where
there are GPUs, the gloo backend on CPUs (tests/recognition/test_ddp.py runs two CPU processes).

When to use which: this trains *one* model faster on a multi-GPU machine. To run many arms x seeds
at once, the Dask task runner of the Prefect flow (`engine.task_runner: dask`) fans independent
trainings out over workers instead; the two combine (a Dask worker per multi-GPU node).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value (repeatable)")
    parser.add_argument("--arm", required=True)
    parser.add_argument("--seed", type=int, default=None, help="default: the config's first verifier seed")
    args = parser.parse_args(argv)

    import torch
    import torch.distributed as torch_dist

    from pipeline.config import load_config
    from recognition.distributed import Distributed
    from recognition.experiment import train_arm

    if "RANK" not in os.environ:
        parser.error("start it with torchrun (e.g. torchrun --nproc-per-node 2 -m recognition.train_ddp ...)")
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    torch_dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
        cfg = load_config(args.profile, args.overrides)
        seed = cfg.verifier.seeds[0] if args.seed is None else args.seed
        progress = (lambda m: print(m, flush=True)) if rank == 0 else (lambda m: None)  # only rank 0 reports
        out = train_arm(cfg, args.arm, seed, device=f"cuda:{local_rank}" if cuda else "cpu", progress=progress,
                        dist=Distributed(rank, world))
        if rank == 0:
            print(f"{args.arm}/seed-{seed}: {out} ({world} processes)", flush=True)
    finally:
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
