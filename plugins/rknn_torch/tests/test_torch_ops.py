"""The aten ops of the issue's list, in small modules traced and scripted, against torch."""

from __future__ import annotations

import numpy as np
import pytest
from torch_models import check_module, randomize, save, torch

from rknn_torch.importer import load_pytorch

nn, F = torch.nn, torch.nn.functional


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.same = nn.Conv2d(8, 6, 3, padding="same")
        self.up = nn.ConvTranspose2d(6, 6, 3, stride=2, padding=1, output_padding=1)
        self.up_grouped = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)

    def forward(self, x):
        return self.up_grouped(self.up(self.same(self.depthwise(self.grouped(x)))))


class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 6)
        self.bn = nn.BatchNorm1d(6)
        self.weight = nn.Parameter(torch.randn(6, 5))
        self.bias = nn.Parameter(torch.randn(5))

    def forward(self, x):
        h = self.bn(self.fc(torch.flatten(x, 1)))
        seq = torch.matmul(x.view(1, 4, 16), x.view(1, 16, 4))
        return torch.addmm(self.bias, h, self.weight, beta=0.5, alpha=2.0), seq, F.linear(x, torch.ones(3, 4) * 0.5)


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.prelu = nn.PReLU(4)
        self.prelu_one = nn.PReLU()
        self.relu_inplace = nn.ReLU(inplace=True)

    def forward(self, x):
        parts = [F.relu(x), F.relu6(x * 4), F.hardtanh(x, -0.5, 0.7), F.leaky_relu(x, 0.2), self.prelu(x),
                 self.prelu_one(x), torch.sigmoid(x), torch.tanh(x), F.hardswish(x * 4), F.hardsigmoid(x * 4),
                 F.silu(x), F.elu(x), F.gelu(x), torch.clamp(x, min=-0.3), self.relu_inplace(x * 1.0)]
        return torch.cat(parts, 1)


class Softmaxes(nn.Module):
    def forward(self, x):
        return F.softmax(x, 1), F.log_softmax(x, -1)


class Pools(nn.Module):
    def forward(self, x):
        return (F.max_pool2d(x, 3, 2, 1, ceil_mode=True), F.max_pool2d(x, 2),
                F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), F.avg_pool2d(x, 2, 2),
                F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d(x, (2, 4)), F.adaptive_avg_pool2d(x, 3))


class Arithmetic(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(4, 1, 1))

    def forward(self, x, y):
        safe = y.abs() + 0.5
        return (x + y, x - 1.5, 2 * x, x / safe, x / 2, torch.add(x, y, alpha=0.5), 1 - x, x * self.scale,
                torch.sub(x, y, alpha=2), torch.div(x, safe, rounding_mode="floor"), torch.log(safe),
                x.mean([2, 3], keepdim=True), x.mean(1), x * x.size(3) + x.size(2) / 2, x / x.shape[1])


class Shapes(nn.Module):
    def forward(self, x):
        n, c, h, w = x.size()
        shuffled = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        flat = x.reshape(x.shape[0], x.shape[1] * x.shape[2], -1)
        return torch.cat([shuffled, x.permute(0, 1, 3, 2)], 1), flat, torch.flatten(x, 2), x.view(-1)


class Splits(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, 1)
        c, d = torch.split(x, [1, 3], 1)
        e, f = x.split(3, dim=1)
        return a * b, c + d, e.sum(1, keepdim=True) - f, x[:, 1:3, ::2, 1:-1], x[:, 0], x[..., 2], x[:, -1:]


class Resizes(nn.Module):
    def forward(self, x):
        return (F.interpolate(x, scale_factor=2.0, mode="nearest"), F.interpolate(x, size=(13, 11), mode="nearest"),
                F.interpolate(x, size=(13, 11), mode="bilinear", align_corners=False),
                F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True),
                F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False))


class Misc(nn.Module):
    """Dropout in eval mode, a buffer, constants made in forward, a loop and a branch on sizes, a list slice."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.drop2d = nn.Dropout2d(0.3)
        self.register_buffer("offset", torch.arange(4.0).view(1, 4, 1, 1))

    def forward(self, x):
        y = self.drop2d(self.drop(x)) + self.offset
        y = F.dropout(y, 0.2, self.training) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
        for i in range(3):
            y = y + float(i)
        if y.size(1) > 2:
            y = y * 0.5
        features = [y, y * 2.0, y * 3.0]
        y = torch.stack(features[1:], 0).sum(0) - features[0]
        return y, torch.ones_like(y) * x.size(3) + x


CASES = {  # name -> (module class, input shapes)
    "conv_groups_dilation_transpose": (Convs, [(1, 4, 9, 9)]),
    "linear_addmm_matmul_batchnorm1d": (Dense, [(1, 4, 4, 4)]),
    "batch_norm": (Norms, [(1, 4, 6, 6)]),
    "activations": (Activations, [(1, 4, 5, 5)]),
    "softmax": (Softmaxes, [(1, 4, 3, 5)]),
    "pools": (Pools, [(1, 4, 8, 8)]),
    "arithmetic_mean_log": (Arithmetic, [(1, 4, 5, 5), (1, 4, 5, 5)]),
    "views_permute_transpose": (Shapes, [(1, 4, 5, 5)]),
    "chunk_split_slice_select": (Splits, [(1, 4, 6, 6)]),
    "upsample": (Resizes, [(1, 2, 5, 4)]),
    "dropout_constants_control_flow": (Misc, [(1, 4, 3, 3)]),
}


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_module_matches_torch(case, mode, tmp_path):
    cls, shapes = CASES[case]
    torch.manual_seed(0)
    net = randomize(cls(), seed=3)
    rng = np.random.default_rng(4)
    feeds = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    check_module(net, feeds, mode, tmp_path)


@pytest.mark.parametrize("mode", ["trace", "script"])
def test_sizes_in_arithmetic_keep_the_tensor_dtype(mode, tmp_path):
    """A traced size is a 0-d int64 tensor: as in torch, it takes the float32 operand's dtype."""
    save(Arithmetic(), [torch.zeros(1, 4, 5, 5), torch.zeros(1, 4, 5, 5)], mode, tmp_path / "m.pt")
    graph = load_pytorch(str(tmp_path / "m.pt"), [[4, 5, 5], [4, 5, 5]])
    assert {graph.tensors[o].dtype for node in graph.nodes for o in node.outputs} == {"float32"}
