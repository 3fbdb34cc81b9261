"""Which number format models compute in: one rule for editors, judge and verifier.

Training uses autocast with fp32 master weights; inference of the GAN editors holds bf16 weights
where the device computes bf16 natively. On this project's 2-core AVX-512-BF16 CPU bf16 is 1.7x
faster than fp32 for both the editors and the verifier (benchmarks/sagan_speed.py,
benchmarks/verifier_speed.py); on CPUs without native bf16 it is slower, so `auto` keeps fp32 there.
"""

from __future__ import annotations


def autocast_dtype(precision: str, device):
    """The training autocast dtype of a precision setting: bf16 when asked, or `auto` on a GPU; None = fp32."""
    import torch

    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def inference_dtype(precision: str, device):
    """Weights' dtype for inference. auto: bf16 on GPUs and on CPUs with native bf16 (AVX-512 BF16 / AMX), else fp32."""
    import torch

    if precision == "fp32":
        return torch.float32
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    except (AttributeError, RuntimeError):
        return torch.float32


def amp(autocast, device_type: str):
    """An autocast context for `autocast_dtype`'s result (a no-op context for None)."""
    import torch

    return torch.autocast(device_type, dtype=autocast or torch.bfloat16, enabled=autocast is not None)
