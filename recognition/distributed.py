"""What distributed training of one verifier needs besides DistributedDataParallel (recognition/train_ddp.py).

BatchNorm must see the global batch, or N processes do not compute what one process computes. On GPUs
PyTorch's SyncBatchNorm does that; it refuses CPU tensors, so on CPUs (the gloo backend) the BatchNorm
layers are replaced by `CrossRankBatchNorm`, which sums each channel's count, sum and sum of squares
over the ranks with a differentiable all-reduce. With it, two CPU processes train the weights one process
would, up to floating-point order (tests/recognition/test_ddp.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job: `rank` of `world_size`."""

    rank: int
    world_size: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed

        torch.distributed.barrier()


def mean_over_ranks(values: torch.Tensor, world: int) -> torch.Tensor:
    """Values averaged over the ranks (e.g. each step's loss: the loss of the global batch); unchanged in one process."""
    if world <= 1:
        return values
    import torch.distributed

    values = values.detach().clone().float()
    torch.distributed.all_reduce(values)
    return values / world


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, on any device (training mode); plain BatchNorm in eval mode."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        channels = xf.shape[1]
        local_count = torch.full((1,), xf.numel() / channels, dtype=torch.float32, device=xf.device)
        stats = all_reduce(torch.cat([xf.sum(dim=dims), (xf * xf).sum(dim=dims), local_count]))
        total, sum_sq, count = stats[:channels], stats[channels: 2 * channels], stats[-1]
        mean = total / count
        var = (sum_sq / count - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1).clamp(min=1), alpha=m)
        y = (xf - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def cross_rank_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm layer replaced by a `CrossRankBatchNorm` holding the same parameters and buffers."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CrossRankBatchNorm):
        new = CrossRankBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        # the very same parameters and buffers (as SyncBatchNorm.convert_sync_batchnorm does): an optimiser built
        # before the swap keeps updating them, and the state dict keeps its keys
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, cross_rank_batchnorm(child))
    return module
