"""CRG networks: an unconditional generator G(z) and the encoder E(I) that inverts it.

Generator (DCGAN-style [5]: project z, then double the resolution with transposed convolutions
and batch normalisation; the output layer is SaGAN's):

    z -> Linear -> s0 x s0 map, BN, ReLU
    per doubling: Deconv 4x4 s2, BN, ReLU
    Conv 7x7 s1 -> 3, Tanh

s0 is the image side halved while it stays an integer >= 4 (4 at 32, 64 and 128 px; 6 at 48 px).
Widths follow the SaGAN decoder's: `conv_dim` channels at full resolution, doubling per halving
of resolution up to `conv_dim * 2**downsamples`. Batch statistics make G(z) depend on the batch
while training; once trained, G runs in eval mode (running statistics), image by image.

Encoder (section 3.2.2, Fig. 5: VGG-style blocks, batch normalisation at the end of each block,
global max pooling after a final 1x1 convolution with z_dim filters):

    per block: 2 x (Conv 3x3, ReLU), BatchNorm, MaxPool 2x2      (channels doubling from conv_dim)
    Conv 1x1 -> z_dim, global max pooling -> z

Width, depth and resolution are constructor arguments; the trainer passes `config.sagan`'s.
"""

from __future__ import annotations

import torch
from torch import nn


def doublings(image_size: int) -> int:
    """How many 2x upsamplings the generator makes: halve the side while it stays an integer >= 4."""
    n = 0
    while image_size % 2 ** (n + 1) == 0 and image_size // 2 ** (n + 1) >= 4:
        n += 1
    return n


class LatentGenerator(nn.Module):
    """G: z (B x z_dim) -> image (B x 3 x image_size x image_size) in [-1, 1]."""

    def __init__(self, image_size: int = 128, z_dim: int = 128, conv_dim: int = 32, downsamples: int = 3):
        super().__init__()
        ups = doublings(image_size)
        start = image_size // 2**ups

        def width(level: int) -> int:  # level 0 is the s0 x s0 map, level `ups` the full resolution
            return conv_dim * 2 ** min(downsamples, ups - level)

        dim = width(0)
        layers: list[nn.Module] = [nn.Linear(z_dim, dim * start * start, bias=False), nn.Unflatten(1, (dim, start, start)),
                                   nn.BatchNorm2d(dim), nn.ReLU(inplace=True)]
        for level in range(1, ups + 1):
            out = width(level)
            layers += [nn.ConvTranspose2d(dim, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            dim = out
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Encoder(nn.Module):
    """E: image (B x 3 x image_size x image_size) -> z (B x z_dim)."""

    def __init__(self, image_size: int = 128, z_dim: int = 128, conv_dim: int = 32, blocks: int = 6):
        super().__init__()
        if image_size % (2**blocks) != 0:
            raise ValueError(f"image size {image_size} is not divisible by 2**{blocks} (encoder blocks)")
        layers: list[nn.Module] = []
        cin, dim = 3, conv_dim
        for _ in range(blocks):
            layers += [nn.Conv2d(cin, dim, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 3, 1, 1), nn.ReLU(inplace=True),
                       nn.BatchNorm2d(dim), nn.MaxPool2d(2)]
            cin, dim = dim, dim * 2
        layers.append(nn.Conv2d(cin, z_dim, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).amax(dim=(2, 3))  # global max pooling
