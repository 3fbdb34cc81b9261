"""An independent attribute classifier that judges edits.

Trained from scratch on the originals' real labels (never on edited images, and
separate from any GAN's discriminator), so "the edit added glasses" means a
classifier that never saw the editor says so. Its own accuracy on real held-out
test images is reported next to every success rate: a success rate cannot be
read more precisely than the judge is accurate.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.atomic import save_torch_atomic
from pipeline.images import batch_to_model_range
from pipeline.attributes import EDITED_ATTRIBUTES, index_of

JUDGE_FILE = "attribute_classifier.pt"


class AttributeClassifier(nn.Module):
    """A small all-conv net: 4 stride-2 conv blocks (BatchNorm, ReLU), global average pool, one logit per attribute."""

    def __init__(self, n_attributes: int, width: int = 32):
        super().__init__()
        layers, cin = [], 3
        for i in range(4):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, n_attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class AttributeJudge:
    def __init__(self, model: AttributeClassifier, attributes: tuple[str, ...], test_accuracy: dict[str, float]):
        self.model = model.eval()
        self.attributes = attributes
        self.test_accuracy = test_accuracy

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, attribute: str) -> torch.Tensor:
        """P(attribute present) for a batch in [-1, 1]."""
        return torch.sigmoid(self.model(images.float())[:, self.attributes.index(attribute)])

    @classmethod
    def load(cls, path: str | Path) -> "AttributeJudge":
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = AttributeClassifier(len(state["attributes"]), state["width"])
        model.load_state_dict(state["model"])
        return cls(model, tuple(state["attributes"]), dict(state["test_accuracy"]))


def train_judge(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    out_path: Path,
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    key: dict | None = None,
) -> AttributeJudge:
    """Train on (uint8 images, N x 40 labels) of the train split; report accuracy on the test split."""
    if out_path.exists():
        return AttributeJudge.load(out_path)
    attributes = tuple(EDITED_ATTRIBUTES)
    cols = [index_of(a) for a in attributes]
    x_train, y_train = train[0], train[1][:, cols].float()
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    model = AttributeClassifier(len(attributes))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    # Rare attributes (glasses on ~6% of faces) get a positive weight so the judge does not learn "never".
    prevalence = y_train.mean(0).clamp(0.01, 0.99)
    pos_weight = ((1 - prevalence) / prevalence).sqrt()
    model.train()
    started = time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(len(x_train), (batch_size,), generator=rng)
        x = batch_to_model_range(x_train[idx])
        flip = torch.rand(batch_size, generator=rng) < 0.5  # a mirrored face keeps its attributes
        x[flip] = x[flip].flip(-1)
        loss = F.binary_cross_entropy_with_logits(model(x), y_train[idx], pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 10) == 0 or step == steps:
            progress(f"judge: step {step}/{steps} loss {loss.item():.3f} ({step / (time.perf_counter() - started):.1f} steps/s)")
    model.eval()
    accuracy = judge_accuracy(model, test[0], test[1][:, cols], attributes)
    progress("judge accuracy on real test images: " + ", ".join(f"{a} {v:.3f}" for a, v in accuracy.items()))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_torch_atomic({"model": model.state_dict(), "attributes": list(attributes), "width": 32, "test_accuracy": accuracy, "key": key or {}}, out_path)
    return AttributeJudge(model, attributes, accuracy)


@torch.inference_mode()
def judge_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attributes: tuple[str, ...]) -> dict[str, float]:
    """Balanced accuracy per attribute (mean of the accuracies on positives and negatives)."""
    preds = torch.cat([model(batch_to_model_range(images[i : i + 256])) > 0 for i in range(0, len(images), 256)])
    out = {}
    for j, a in enumerate(attributes):
        y = labels[:, j] > 0.5
        parts = [(preds[y, j] == 1).float().mean().item() if y.any() else None, (preds[~y, j] == 0).float().mean().item() if (~y).any() else None]
        parts = [p for p in parts if p is not None]
        out[a] = sum(parts) / len(parts)
    return out
