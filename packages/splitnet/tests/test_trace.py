"""Tracing: where cuts may go, the structural fallback, and models that cannot be traced."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import splitnet


class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.inner(x)


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_cuts_never_fall_inside_a_residual_block():
    model = nn.Sequential(nn.Linear(4, 8), Residual(8), Residual(8), nn.Linear(8, 2))
    chain = splitnet.trace(model, torch.randn(3, 4))
    assert [c.label for c in chain.cuts] == ["0", "1", "2"]
    assert [c.shape for c in chain.cuts] == [(3, 8)] * 3


def test_values_that_do_not_depend_on_the_input_never_block_a_cut():
    class WithEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.randn(1, 8))
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            x = self.a(x) + self.pos
            return self.b(x) + self.pos * 2

    model = WithEmbedding()
    x = torch.randn(2, 8)
    chain = splitnet.trace(model, x)
    assert len(chain.cuts) >= 2
    out = chain.module(0, 2)(x)
    assert torch.equal(chain.module(2, chain.num_pieces)(out), model(x))


def test_untraceable_submodules_are_kept_opaque_with_a_warning():
    inner = nn.Module()
    inner.body = nn.Sequential(nn.Linear(4, 4), DataDependent(), nn.Linear(4, 4))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = inner

        def forward(self, x):
            return self.net.body(x)

    model = Wrapper()
    x = torch.randn(2, 4)
    with pytest.warns(UserWarning, match=r"kept net.body.1 \(DataDependent\) opaque"):
        chain = splitnet.trace(model, x)
    assert [c.label for c in chain.cuts] == ["net.body.0", "net.body.1"]
    assert torch.equal(chain.module(0, 2)(x).neg(), -model.net.body[1](model.net.body[0](x)))


def test_an_untraceable_top_level_forward_names_the_fix():
    class TopLevel(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else x

    with pytest.raises(splitnet.TraceFailure, match="top-level forward.*nn.Sequential"):
        splitnet.trace(TopLevel(), torch.randn(2, 4))


def test_a_sequential_with_an_untraceable_child_splits_between_its_children():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(DataDependent(), nn.Linear(4, 3)), nn.ReLU())
    x = torch.randn(2, 4)
    with pytest.warns(UserWarning, match=r"kept 1.0 \(DataDependent\) opaque"):
        chain = splitnet.trace(model, x)
    assert [c.label for c in chain.cuts] == ["0", "1.0", "1"]
    h = x
    for a, b in [(0, 2), (2, 4)]:
        h = chain.module(a, b)(h)
    assert torch.equal(h, model(x))


def test_only_tensors_are_carried():
    with pytest.raises(splitnet.SplitError, match="one tensor"):
        splitnet.trace(nn.Linear(2, 2), [torch.randn(2, 2)])


def test_in_place_updates_without_users_survive_the_split():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.register_buffer("offset", torch.ones(4))

        def forward(self, x):
            y = self.a(x)
            bias = self.offset.clone()
            bias.mul_(3)  # no user: its effect is the point
            y.add_(bias)  # no user either
            return self.b(y) + bias

    model = InPlace()
    x = torch.randn(2, 4)
    chain = splitnet.trace(model, x)
    h = x
    for piece in chain.pieces():
        h = piece(h)
    assert torch.equal(h, model(x))


def test_a_split_that_would_change_the_output_is_refused():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1  # python state: traced as a constant
            return self.b(self.a(x)) * self.calls

    with pytest.raises(splitnet.TraceFailure, match="changes its output"):
        splitnet.trace(Counter(), torch.randn(2, 4))


def test_layouts_are_told_apart_from_shapes():
    from splitnet._layout import infer_layout

    assert infer_layout((64, 8, 8), (3, 32, 32)) == "NCHW"
    assert infer_layout((8, 8, 96), (3, 32, 32)) == "NHWC"
    assert infer_layout((64, 8, 14, 14), (3, 16, 112, 112)) == "NCTHW"
    assert infer_layout((8, 14, 14, 96), (3, 16, 112, 112)) == "NTHWC"
    assert infer_layout((197, 192), (3, 224, 224)) == "NLC" and infer_layout((10,), (3, 8, 8)) == "NC"
