"""SaGAN's layers match Tables 1 and 2 of the paper at 128 px, and its losses behave."""

import torch
from torch import nn

from editing.losses import gradient_penalty, total_variation
from editing.networks import Discriminator, ResidualBlock, init_weights
from editing.sagan import Generator


def _trace(module: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple, tuple]]:
    """(layer kind, weight shape, output shape) for every conv/deconv/residual block, in order."""
    out = []

    def hook(mod, _inp, res):
        kind = type(mod).__name__
        w = tuple(mod.weight.shape) if hasattr(mod, "weight") and not isinstance(mod, ResidualBlock) else ()
        out.append((kind, w, tuple(res.shape)))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, ResidualBlock)) and not _inside_resblock(module, m)]
    module(x)
    for h in handles:
        h.remove()
    return out


def _inside_resblock(root: nn.Module, target: nn.Module) -> bool:
    return any(isinstance(m, ResidualBlock) and any(c is target for c in m.modules()) and m is not target for m in root.modules())


def test_generator_matches_table_1():
    g = Generator()  # paper defaults
    x = torch.randn(1, 3, 128, 128)
    amn = _trace(g.amn, torch.cat([x, torch.ones(1, 1, 128, 128)], 1))
    san = _trace(g.san, x)
    expected = [  # (kind, (out, in, k, k) for convs; (in, out, k, k) for deconvs, output shape)
        ("Conv2d", (32, "I", 7, 7), (1, 32, 128, 128)),
        ("Conv2d", (64, 32, 4, 4), (1, 64, 64, 64)),
        ("Conv2d", (128, 64, 4, 4), (1, 128, 32, 32)),
        ("Conv2d", (256, 128, 4, 4), (1, 256, 16, 16)),
        *[("ResidualBlock", (), (1, 256, 16, 16))] * 4,
        ("ConvTranspose2d", (256, 128, 4, 4), (1, 128, 32, 32)),
        ("ConvTranspose2d", (128, 64, 4, 4), (1, 64, 64, 64)),
        ("ConvTranspose2d", (64, 32, 4, 4), (1, 32, 128, 128)),
        ("Conv2d", ("O", 32, 7, 7), (1, "O", 128, 128)),
    ]
    for trace, cin, cout in ((amn, 4, 3), (san, 3, 1)):
        assert len(trace) == 12  # L1..L12
        for (kind, w, shape), (ekind, ew, eshape) in zip(trace, expected):
            ew = tuple(cin if v == "I" else cout if v == "O" else v for v in ew)
            eshape = tuple(cout if v == "O" else v for v in eshape)
            assert (kind, w, shape) == (ekind, ew, eshape)
    # strides and paddings of Table 1
    convs = [m for m in g.amn.main if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [(m.stride[0], m.padding[0]) for m in convs] == [(1, 3), (2, 1), (2, 1), (2, 1), (2, 1), (2, 1), (2, 1), (1, 3)]
    assert isinstance(g.amn.main[-1], nn.Tanh) and isinstance(g.san.main[-1], nn.Sigmoid)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in g.amn.main) == 7  # IN after L1-L4 and L9-L11

def test_residual_block_is_table_1():
    block = ResidualBlock(256)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(tuple(c.weight.shape), c.stride[0], c.padding[0]) for c in convs] == [((256, 256, 3, 3), 1, 1)] * 2


def test_discriminator_matches_table_2():
    d = Discriminator(128)
    convs = [m for m in d.main if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (32, 3, 4, 4), (64, 32, 4, 4), (128, 64, 4, 4), (256, 128, 4, 4), (512, 256, 4, 4), (1024, 512, 4, 4)
    ]
    assert all(c.stride[0] == 2 and c.padding[0] == 1 for c in convs)
    assert all(isinstance(m, nn.LeakyReLU) for m in list(d.main)[1::2])
    assert tuple(d.src.weight.shape) == (1, 1024, 3, 3) and d.src.padding[0] == 1
    assert tuple(d.cls.weight.shape) == (1, 1024, 2, 2) and d.cls.padding[0] == 0  # kernel covers the 2x2 map
    src, cls = d(torch.randn(2, 3, 128, 128))
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2,)


def test_output_is_eq_7_blend():
    torch.manual_seed(0)
    g = Generator(conv_dim=8, downsamples=2, res_blocks=1)
    g.apply(init_weights)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.tensor([0.0, 1.0])
    out, mask = g(x, c)
    ia = g.manipulate(x, c)
    assert torch.allclose(out, ia * mask + x * (1 - mask), atol=1e-6)
    assert mask.min() >= 0 and mask.max() <= 1 and mask.shape == (2, 1, 32, 32)


def test_init_is_normal_0_002():
    g = Generator()
    g.apply(init_weights)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3


def test_gradient_penalty_known_answer():
    # D(x) = sum(a * x): its gradient is a everywhere, so the penalty is (||a|| - 1)^2.
    a = torch.full((1, 3, 4, 4), 0.5)
    penalty = gradient_penalty(lambda x: (x * a).flatten(1).sum(1), torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4), torch.Generator().manual_seed(0))
    assert torch.isclose(penalty, (a.norm() - 1) ** 2)


def test_total_variation_known_answer():
    m = torch.zeros(1, 1, 4, 4)
    assert total_variation(m) == 0
    m[..., 2:] = 1  # one vertical edge: 4 of the 12 horizontal differences are 1
    assert torch.isclose(total_variation(m), torch.tensor(4 / 12))
