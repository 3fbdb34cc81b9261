"""Margin softmax heads for face-recognition training: CosFace and ArcFace.

Both normalise the class weights and the embeddings, so a logit is s·cos θ between an
embedding and a class centre; they differ in how the target class is penalised:

    CosFace (Wang et al., 2018):  s·(cos θ_y − m)            others s·cos θ_j
    ArcFace (Deng et al., 2019):  s·cos(θ_y + m)             others s·cos θ_j

ArcFace's cos(θ + m) stops decreasing once θ + m > π, so past the threshold
θ > π − m it is replaced by the CosFace-like cos θ − m·sin(m) (insightface's
`th`/`mm` handling), which keeps the target logit monotonic in θ; `easy_margin`
instead applies the margin only where cos θ > 0. The heads return logits; the
loss is plain cross-entropy on them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.registry import Registry

# name -> head class(embedding_dim, num_classes, scale=, margin=); `verifier.head` picks one.
# Heads of other packages arrive through the `faceaug.heads` entry-point group.
HEADS: Registry[type[nn.Module]] = Registry("verifier head", entry_points="faceaug.heads")


class _MarginHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a margin head needs at least one class, got {num_classes}")
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.scale, self.margin = float(scale), float(margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """B x C cosines between the (normalised) embeddings and class centres, in fp32."""
        return F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1)).clamp(-1, 1)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        onehot = F.one_hot(labels, self.num_classes).bool()
        cos_target = cos.gather(1, labels.view(-1, 1))
        logits = torch.where(onehot, self.target_logit(cos_target), cos)
        return logits * self.scale

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, scale={self.scale}, margin={self.margin}"


@HEADS.register("cosface")
class CosFaceHead(_MarginHead):
    """logits = s·(cos θ − m·onehot(y))."""

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35):
        super().__init__(embedding_dim, num_classes, scale, margin)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.margin


@HEADS.register("arcface")
class ArcFaceHead(_MarginHead):
    """logits = s·cos(θ_y + m) for the target (threshold-corrected), s·cos θ_j otherwise."""

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 64.0, margin: float = 0.5,
                 easy_margin: bool = False):
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.easy_margin = easy_margin
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th = math.cos(math.pi - margin)  # cos θ below this means θ + m > π
        self.mm = math.sin(math.pi - margin) * margin

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        sin = (1.0 - cos_target.pow(2)).clamp_min(1e-12).sqrt()
        phi = cos_target * self.cos_m - sin * self.sin_m  # cos(θ + m)
        if self.easy_margin:
            return torch.where(cos_target > 0, phi, cos_target)
        return torch.where(cos_target > self.th, phi, cos_target - self.mm)


def make_head(name: str, embedding_dim: int, num_classes: int, *, scale: float, margin: float) -> nn.Module:
    """A registered head by name ('cosface', 'arcface', or a plugin's)."""
    return HEADS.get(name)(embedding_dim, num_classes, scale=scale, margin=margin)
