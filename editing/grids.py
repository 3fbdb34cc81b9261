"""Picture grids of faces, edits, masks and residuals (training samples, evaluation and comparison figures)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def sample_grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """A grid of images; each cell is 3xHxW in [-1, 1] or 1xHxW in [0, 1] (masks) / [-1, 1] residuals."""
    cells = []
    for row in rows:
        line = []
        for cell in row:
            c = cell.detach().float().cpu()
            if c.shape[0] == 1:
                c = c.repeat(3, 1, 1) * 2 - 1
            line.append(((c.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
        cells.append(np.concatenate(line, axis=1))
    return Image.fromarray(np.concatenate(cells, axis=0))
