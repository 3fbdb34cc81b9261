"""Verifier backbones: image -> feature vector, trained from scratch (never pretrained).

    @BACKBONES.register("resnet18")
    def resnet18(small_input: int) -> nn.Module: ...   # a module with `num_features`

`verifier.arch` picks one by name; backbones of other packages arrive through the `faceaug.backbones`
entry-point group. The built-ins are timm's ResNets with an optional small-input stem:

small_input 0 keeps the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool, which would shrink a
32-64 px face to 8-16 px before the first block); 1 or 2 replaces it with a 3x3 conv of that stride and no
pooling, as CIFAR-style ResNets do. `small_input_for(size)` picks stride 1 up to 32 px and stride 2 up to
64 px, so the first stage always works on 32 px or more (a stride-1 stem at 64 px would cost ~4x the FLOPs
of the ImageNet stem at 128 px).
"""

from __future__ import annotations

from torch import nn

from pipeline.registry import Registry

BACKBONES: Registry = Registry("verifier backbone", entry_points="faceaug.backbones")


def small_input_for(image_size: int) -> int:
    """The stem for images of this size: 0 = ImageNet stem (> 64 px), 2 = 3x3 stride-2 conv without max-pool
    (33-64 px), 1 = 3x3 stride-1 conv without max-pool (<= 32 px). Each keeps the first residual stage at 32 px
    or more, at about the FLOPs of the ImageNet stem at 128 px."""
    if image_size <= 32:
        return 1
    return 2 if image_size <= 64 else 0


def timm_resnet(arch: str, small_input: int = 0) -> nn.Module:
    import timm  # heavy import, only where a model is built

    backbone = timm.create_model(arch, pretrained=False, num_classes=0)
    if small_input:
        conv1, maxpool = getattr(backbone, "conv1", None), getattr(backbone, "maxpool", None)
        if not isinstance(conv1, nn.Conv2d) or maxpool is None:
            raise ValueError(f"small_input needs a ResNet-style backbone with conv1/maxpool; {arch!r} has none")
        stride = 1 if small_input is True else int(small_input)
        backbone.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride, 1, bias=False)
        backbone.maxpool = nn.Identity()
    return backbone


for _name in ("resnet18", "resnet34", "resnet50"):
    BACKBONES.add(_name, lambda small_input=0, _arch=_name: timm_resnet(_arch, small_input), origin=__name__)


def make_backbone(arch: str, small_input: int = 0) -> nn.Module:
    return BACKBONES.get(arch)(small_input=small_input)
