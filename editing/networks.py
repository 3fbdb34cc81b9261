"""The GAN building blocks the editors share, as in Tables 1 and 2 of the SaGAN paper.

`EncoderDecoder` is Table 1's network, which SaGAN uses twice (the AMN: image + one attribute
channel -> RGB, Tanh; the SAN: image -> one-channel mask, Sigmoid) and the other editors reuse
as their generators:

    L1      Conv 7x7 s1 -> d, IN, ReLU                       (paper: d = 32)
    L2-L4   Conv 4x4 s2, doubling channels, IN, ReLU         (paper: 3 of them, to 256)
    L5-L8   residual blocks (Conv 3x3, IN, ReLU, Conv 3x3, IN, + skip)   (paper: 4)
    L9-L11  Deconv 4x4 s2, halving channels, IN, ReLU
    L12     Conv 7x7 s1 -> 3 (Tanh) or 1 (Sigmoid)

Discriminator (PatchGAN-like): `d_layers` Conv 4x4 s2 with LeakyReLU(0.01), channels
doubling from d (paper: 6 layers, 32 -> 1024), then a real/fake head (Conv 3x3 s1 p1 -> 1)
and an attribute head whose kernel covers the remaining map (2x2 at 128 px, no padding).
The paper puts a Sigmoid on the attribute head; we return logits and apply the sigmoid
inside the binary cross-entropy (numerically the same loss, stabler).

Width, depth and resolution are constructor arguments so small CPU profiles can shrink
them; with the defaults at 128 px every layer matches the tables (tests/editing/test_sagan.py).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_in_relu(cin: int, cout: int, k: int, s: int, p: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.InstanceNorm2d(dim, affine=True), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EncoderDecoder(nn.Module):
    """The shared AMN/SAN architecture of Table 1."""

    def __init__(self, in_channels: int, out_channels: int, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4, out_act: str = "tanh"):
        super().__init__()
        layers = _conv_in_relu(in_channels, conv_dim, 7, 1, 3)
        dim = conv_dim
        for _ in range(downsamples):
            layers += _conv_in_relu(dim, dim * 2, 4, 2, 1)
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(res_blocks)]
        for _ in range(downsamples):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(dim // 2, affine=True), nn.ReLU(inplace=True)]
            dim //= 2
        layers += [nn.Conv2d(dim, out_channels, 7, 1, 3, bias=False), nn.Tanh() if out_act == "tanh" else nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class Discriminator(nn.Module):
    def __init__(self, image_size: int = 128, conv_dim: int = 32, layers: int = 6):
        super().__init__()
        if image_size % (2**layers) != 0:
            raise ValueError(f"image size {image_size} is not divisible by 2**{layers} (discriminator layers)")
        blocks: list[nn.Module] = []
        cin, dim = 3, conv_dim
        for _ in range(layers):
            blocks += [nn.Conv2d(cin, dim, 4, 2, 1), nn.LeakyReLU(0.01, inplace=True)]
            cin, dim = dim, dim * 2
        self.main = nn.Sequential(*blocks)
        final = image_size // (2**layers)
        self.src = nn.Conv2d(cin, 1, 3, 1, 1, bias=False)  # real/fake, a PatchGAN map
        self.cls = nn.Conv2d(cin, 1, final, 1, 0, bias=False)  # attribute logit, kernel covers the map

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).view(-1)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for every conv weight, as the paper states (section 3); biases zero, IN scale 1."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.InstanceNorm2d) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
