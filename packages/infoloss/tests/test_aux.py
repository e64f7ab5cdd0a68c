"""Auxiliary heads and the decoder, built from many feature shapes and layouts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infoloss import AUX_CONFIGS, AuxHead, DenseAuxHead, DGLHead, ReconstructionDecoder, reconstruction_loss

CHANNELS = [3, 16, 24, 64, 96, 768]
SIZES = [1, 4, 7, 32]


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_every_config_fits_any_channel_count_and_resolution(channels, size):
    torch.manual_seed(0)
    features = torch.randn(2, channels, size, size)
    for config in AUX_CONFIGS:
        # The 768-channel, 32x32 convolutions are the slow ones: one config is enough there.
        if channels == 768 and size == 32 and config not in ("0c1f", "1c2f"):
            continue
        head = AuxHead((channels, size, size), 10, config=config)
        out = head(features)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        strides = {c.stride for c in _convs(head)}
        # 16 and 32 channels: stride 2 at any size, 64: stride 1 (the reference's heads); else size > 8
        strided = {16: True, 64: False}.get(channels, size > 8)
        assert strides <= {(2, 2), (1, 1)} and ((2, 2) in strides) == (config[0] != "0" and strided)


# The reference code's heads (networks/auxiliary_nets.py, AuxClassifier, lines 92-239), chosen
# by channel count alone (line 43: 16, 32 or 64): conv width 32, 64, 64 and stride 2, 2, 1;
# fc hidden feature_dim * widen; convs without bias. CIFAR-10 and SVHN put them on 32x32,
# 16x16 and 8x8 features, STL-10 (96x96 images) on 96x96, 48x48 and 24x24.
PAPER = [
    ((16, 32, 32), 32, 2),
    ((32, 16, 16), 64, 2),
    ((64, 8, 8), 64, 1),
    ((16, 96, 96), 32, 2),
    ((32, 48, 48), 64, 2),
    ((64, 24, 24), 64, 1),
]


@pytest.mark.parametrize(("shape", "width", "stride"), PAPER)
@pytest.mark.parametrize("widen", [1, 2])
@pytest.mark.parametrize("config", AUX_CONFIGS)
def test_heads_reproduce_the_reference_configurations(shape, width, stride, widen, config):
    out, hidden = 128, 128 * widen
    convs, fcs = int(config[0]), int(config[2])
    head = AuxHead(shape, out, config=config, widen=widen, hidden_dim=128)
    c, w = shape[0], width * widen
    conv_shapes = ([(w, c, 3, 3), (w,), (w,)] + [(w, w, 3, 3), (w,), (w,)] * (convs - 1)) if convs else []
    fc_in = w if convs else c
    fc_shapes = []
    for _ in range(fcs - 1):
        fc_shapes += [(hidden, fc_in), (hidden,)]
        fc_in = hidden
    fc_shapes += [(out, fc_in), (out,)]
    expected = sum(torch.Size(s).numel() for s in conv_shapes + fc_shapes)
    assert _params(head) == expected
    if convs:
        assert [m.stride for m in _convs(head)] == [(stride, stride)] + [(1, 1)] * (convs - 1)
    assert all(m.bias is None for m in _convs(head))
    assert len(_linears(head)) == fcs


def _reference_1c2f(channels: int, width: int, stride: int, feature_dim: int, out: int) -> nn.Sequential:
    """auxiliary_nets.py lines 121-154 (``net_config == '1c2f'``), widen 1, written out here."""
    return nn.Sequential(
        nn.Conv2d(channels, width, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(width, feature_dim),
        nn.ReLU(inplace=True),
        nn.Linear(feature_dim, out),
    )


@pytest.mark.parametrize(("shape", "width", "stride"), PAPER)
def test_the_1c2f_head_computes_what_the_reference_head_computes(shape, width, stride):
    torch.manual_seed(0)
    head = AuxHead(shape, 128, config="1c2f", hidden_dim=128).train()
    reference = _reference_1c2f(shape[0], width, stride, 128, 128).train()
    reference.load_state_dict(head.net.state_dict())
    features = torch.randn(4, *shape)
    torch.testing.assert_close(head(features), reference(features), rtol=0, atol=0)


def _weight_std(conv: nn.Module) -> float:
    return math.sqrt(2.0 / (math.prod(conv.kernel_size) * conv.out_channels))


def _looks_normal(weight: torch.Tensor, std: float) -> bool:
    """Mean near 0, std near ``std``, and tails a uniform of that std (max 1.73 std) never has."""
    w = weight.detach().double().flatten()
    spread = 4 / math.sqrt(w.numel())
    return (
        abs(w.mean().item()) < spread * std
        and abs(w.std().item() / std - 1) < spread
        and w.abs().max().item() > 2.2 * std
    )


@pytest.mark.parametrize("config", ["1c2f", "2c2f"])
def test_heads_and_decoders_start_as_the_reference_initialises_them(config):
    # networks/resnet.py lines 141-147: every Conv2d of the network, its auxiliary nets included,
    # gets normal(0, sqrt(2 / (k*k*out_channels))); every BatchNorm2d weight 1, bias 0; Linear
    # layers and convolution biases keep PyTorch's defaults.
    torch.manual_seed(0)
    head = AuxHead((64, 24, 24), 128, config=config)
    decoder = ReconstructionDecoder((64, 24, 24), (3, 96, 96))
    convs = _convs(head) + _convs(decoder)
    assert convs and all(_looks_normal(c.weight, _weight_std(c)) for c in convs)
    norms = [m for m in [*head.modules(), *decoder.modules()] if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)
    first = _convs(decoder)[0]  # nn.Conv2d's default bias: uniform(+-1/sqrt(fan_in)), fan_in = 64 * 3 * 3
    assert first.bias is not None and first.bias.abs().max().item() <= 1 / math.sqrt(64 * 9)
    for linear in _linears(head):  # PyTorch's default, kaiming_uniform(a=sqrt(5)): within 1/sqrt(fan_in)
        limit = 1 / math.sqrt(linear.in_features)
        assert linear.weight.abs().max().item() <= limit and linear.weight.abs().max().item() > 0.9 * limit


def test_the_decoder_computes_what_the_reference_decoder_computes():
    # auxiliary_nets.py lines 7-36: bilinear upsampling (align_corners=True) to the image size,
    # conv3x3(C -> 12*widen) - BN - ReLU - conv3x3(-> 3) - Sigmoid, then nn.BCELoss (mean).
    torch.manual_seed(0)
    decoder = ReconstructionDecoder((64, 24, 24), (3, 96, 96)).train()
    reference = nn.Sequential(
        nn.Conv2d(64, 12, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(12),
        nn.ReLU(),
        nn.Conv2d(12, 3, kernel_size=3, stride=1, padding=1),
        nn.Sigmoid(),
    ).train()
    reference.load_state_dict(decoder.body.state_dict())
    features, image = torch.randn(2, 64, 24, 24), torch.rand(2, 3, 96, 96)
    upsampled = F.interpolate(features, size=[96, 96], mode="bilinear", align_corners=True)
    expected = nn.BCELoss()(reference(upsampled), image)
    torch.testing.assert_close(
        reconstruction_loss(decoder(features), image, "bce"), expected, rtol=1e-5, atol=0
    )


def _saved_for_backward(fn, *args):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = fn(*args)
    return out, saved


@pytest.mark.parametrize("interpolate", ["bilinear", "nearest"])
def test_a_decoder_at_the_input_resolution_saves_no_copy_of_the_features(interpolate):
    # Resizing to the same size is exactly the identity in both modes (bilinear with
    # align_corners=True), so the decoder skips it: the backward pass keeps the features
    # themselves, not a feature-sized copy (64 MiB per cut of ResNet-110 at batch 1024).
    torch.manual_seed(0)
    decoder = ReconstructionDecoder((16, 32, 32), (3, 32, 32), interpolate=interpolate).train()
    features = torch.randn(4, 16, 32, 32, requires_grad=True)
    out, saved = _saved_for_backward(decoder, features)
    feature_sized = {t.untyped_storage().data_ptr() for t in saved if t.shape == features.shape}
    assert feature_sized == {features.untyped_storage().data_ptr()}
    align = True if interpolate == "bilinear" else None
    resized = F.interpolate(features, size=(32, 32), mode=interpolate, align_corners=align)
    assert torch.equal(resized, features)
    assert torch.equal(out, decoder.body(resized))


def test_an_upsampling_decoder_convolves_in_channels_last_format():
    # The first convolution's large input is made channels-last before upsampling, so oneDNN
    # needs no layout copy of it (168 MiB of real peak at ResNet-110's 16x16 cut, batch 1024);
    # the numbers are the channels-first ones up to rounding.
    torch.manual_seed(0)
    decoder = ReconstructionDecoder((32, 16, 16), (3, 32, 32)).train()
    features = torch.randn(4, 32, 16, 16)
    out, saved = _saved_for_backward(decoder, features)
    upsampled = [t for t in saved if t.shape == (4, 32, 32, 32)]
    assert upsampled and all(t.is_contiguous(memory_format=torch.channels_last) for t in upsampled)
    expected = decoder.body(F.interpolate(features, size=(32, 32), mode="bilinear", align_corners=True))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_aux_channels_overrides_the_width_rule():
    head = AuxHead((768, 14, 14), 10, config="1c2f", channels=256)
    assert head.width == 256 and _convs(head)[0].out_channels == 256


@pytest.mark.parametrize("prefix", [0, 1, 5])
def test_tokens_on_a_grid_match_the_same_head_on_the_image_grid(prefix):
    torch.manual_seed(0)
    grid = torch.randn(3, 24, 4, 7)
    tokens = torch.cat([torch.randn(3, prefix, 24), grid.flatten(2).transpose(1, 2)], dim=1)
    image_head = AuxHead((24, 4, 7), 5, config="2c2f")
    token_head = AuxHead(
        tuple(tokens.shape[1:]), 5, layout="NLC", token_grid=(4, 7), num_prefix_tokens=prefix, config="2c2f"
    )
    token_head.load_state_dict(image_head.state_dict())
    torch.testing.assert_close(token_head(tokens), image_head(grid))


def test_nhwc_matches_nchw():
    torch.manual_seed(0)
    grid = torch.randn(2, 16, 12, 12)
    nchw = AuxHead((16, 12, 12), 7)
    nhwc = AuxHead((12, 12, 16), 7, layout="NHWC")
    nhwc.load_state_dict(nchw.state_dict())
    torch.testing.assert_close(nhwc(grid.permute(0, 2, 3, 1)), nchw(grid))


@pytest.mark.parametrize("config", AUX_CONFIGS)
@pytest.mark.parametrize("prefix", [0, 1])
def test_tokens_without_grid_use_per_token_layers_and_ignore_prefix_tokens(config, prefix):
    torch.manual_seed(0)
    head = AuxHead((prefix + 10, 96), 4, layout="NLC", num_prefix_tokens=prefix, config=config).eval()
    assert all(c.kernel_size == (1, 1) and c.stride == (1, 1) for c in _convs(head))
    tokens = torch.randn(2, prefix + 10, 96)
    out = head(tokens)
    assert out.shape == (2, 4)
    shuffled = torch.cat([tokens[:, :prefix], tokens[:, prefix:][:, torch.randperm(10)]], dim=1)
    torch.testing.assert_close(head(shuffled), out, rtol=1e-5, atol=1e-6)
    if prefix:
        tokens[:, 0] += 100
        torch.testing.assert_close(head(tokens), out)


@pytest.mark.parametrize("config", AUX_CONFIGS)
def test_vectors_get_mlp_heads(config):
    head = AuxHead((64,), 3, layout="NC", config=config)
    assert all(c.kernel_size == (1, 1) for c in _convs(head))
    assert head(torch.randn(4, 64)).shape == (4, 3)


def test_video_features_use_3d_heads_that_keep_time():
    head = AuxHead((16, 4, 16, 16), 5, layout="NCTHW", config="2c2f")
    assert [c.stride for c in _convs(head)] == [(1, 2, 2), (1, 1, 1)]
    assert head(torch.randn(2, 16, 4, 16, 16)).shape == (2, 5)


def test_channels_last_video_is_the_same_head_on_permuted_features():
    torch.manual_seed(0)
    first = AuxHead((16, 4, 8, 8), 5, layout="NCTHW", config="1c2f")
    torch.manual_seed(0)
    last = AuxHead((4, 8, 8, 16), 5, layout="NTHWC", config="1c2f")
    x = torch.randn(2, 16, 4, 8, 8)
    torch.testing.assert_close(last(x.permute(0, 2, 3, 4, 1)), first(x))


def test_heads_reject_bad_shapes_and_configs():
    with pytest.raises(ValueError, match="unknown auxiliary net config '3c1f'"):
        AuxHead((16, 8, 8), 10, config="3c1f")
    with pytest.raises(ValueError, match="unknown layout"):
        AuxHead((16, 8, 8), 10, layout="CHW")
    with pytest.raises(ValueError, match="layout NHWC needs 3"):
        AuxHead((16, 8), 10, layout="NHWC")
    with pytest.raises(ValueError, match=r"token_grid \(4, 4\) does not match the 15 patch tokens"):
        AuxHead((16, 8), 10, layout="NLC", token_grid=(4, 4), num_prefix_tokens=1)
    with pytest.raises(ValueError, match="prefix tokens"):
        AuxHead((4, 8), 10, layout="NLC", num_prefix_tokens=4)
    head = AuxHead((16, 8, 8), 10)
    with pytest.raises(ValueError, match=r"built for features of shape \(B, 16, 8, 8\).*got \(2, 16, 4, 4\)"):
        head(torch.randn(2, 16, 4, 4))


@pytest.mark.parametrize("config", AUX_CONFIGS)
@pytest.mark.parametrize("shape", [(3, 1, 1), (64, 8, 8), (96, 7, 5)])
def test_dense_heads_predict_every_pixel_at_the_target_size(config, shape):
    head = DenseAuxHead(shape, 19, config=config)
    assert all(c.stride == (1, 1) for c in _convs(head))
    assert head(torch.randn(2, *shape), size=(32, 24)).shape == (2, 19, 32, 24)


def test_dense_heads_accept_tokens_on_a_grid_and_reject_the_rest():
    head = DenseAuxHead((1 + 16, 32), 5, layout="NLC", token_grid=(4, 4), num_prefix_tokens=1)
    assert head(torch.randn(2, 17, 32), size=(16, 16)).shape == (2, 5, 16, 16)
    for shape, layout in [((16, 32), "NLC"), ((32,), "NC"), ((8, 2, 4, 4), "NCTHW")]:
        with pytest.raises(ValueError, match="dense .* need a 2-D feature grid"):
            DenseAuxHead(shape, 5, layout=layout)


def test_dgl_head_follows_the_dgl_code():
    # auxillary_classifier2(n_lin=3, mlp_layers=3) on 128 channels at 16x16: pool to 4x4,
    # three 1x1 conv-BN-ReLU, pool to 2x2, three Linear(512, 512)-BN-ReLU, Linear(512, 10).
    head = DGLHead((128, 16, 16), 10)
    pools = [m.output_size for m in head.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    assert pools == [(4, 4), (2, 2)]
    assert [c.kernel_size for c in _convs(head)] == [(1, 1)] * 3
    assert [(m.in_features, m.out_features) for m in _linears(head)] == [(512, 512)] * 3 + [(512, 10)]
    cnn = DGLHead((128, 16, 16), 10, aux_type="cnn")
    assert [c.kernel_size for c in _convs(cnn)] == [(3, 3)] * 2
    assert [(m.in_features, m.out_features) for m in _linears(cnn)] == [(512, 10)]
    assert len(_convs(DGLHead((128, 16, 16), 10, aux_type="mlp"))) == 0


@pytest.mark.parametrize("aux_type", ["mlp-sr", "mlp", "cnn"])
@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((3, 1, 1), {}),
        ((16, 7, 7), {}),
        ((64, 32, 32), {}),
        ((7, 7, 64), {"layout": "NHWC"}),
        ((1 + 49, 96), {"layout": "NLC", "token_grid": (7, 7), "num_prefix_tokens": 1}),
        ((10, 96), {"layout": "NLC"}),
        ((24,), {"layout": "NC"}),
    ],
)
def test_dgl_head_fits_any_shape(aux_type, shape, kwargs):
    head = DGLHead(shape, 10, aux_type=aux_type, **kwargs)
    assert head(torch.randn(3, *shape)).shape == (3, 10)


def test_dgl_head_rejects_video_and_unknown_types():
    with pytest.raises(ValueError, match="video"):
        DGLHead((8, 2, 4, 4), 10, layout="NCTHW")
    with pytest.raises(ValueError, match="unknown aux_type"):
        DGLHead((8, 4, 4), 10, aux_type="linear")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_decoder_predicts_the_input_from_any_grid(channels, size):
    decoder = ReconstructionDecoder((channels, size, size), (3, 32, 32))
    assert decoder(torch.randn(2, channels, size, size)).shape == (2, 3, 32, 32)
    projects = isinstance(decoder.project, nn.Conv2d)
    assert projects == (channels > 108)
    if projects:
        assert decoder.project.out_channels == 108 and decoder.project.bias is None


def test_decoder_matches_the_reference_layers():
    decoder = ReconstructionDecoder((16, 32, 32), (3, 32, 32), widen=2)
    convs = _convs(decoder)
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (16, 24, (3, 3)),
        (24, 3, (3, 3)),
    ]


def test_decoder_projection_commutes_with_upsampling():
    # Why projecting first loses nothing: a bias-free 1x1 convolution and the upsampling commute.
    torch.manual_seed(0)
    decoder = ReconstructionDecoder((256, 4, 4), (3, 16, 16))
    features = torch.randn(2, 256, 4, 4)
    up = nn.functional.interpolate(features, size=(16, 16), mode="bilinear", align_corners=True)
    torch.testing.assert_close(
        decoder.project(up),
        nn.functional.interpolate(
            decoder.project(features), size=(16, 16), mode="bilinear", align_corners=True
        ),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("interpolate", ["bilinear", "nearest"])
def test_decoder_layouts(interpolate):
    kw = {"interpolate": interpolate}
    tokens = ReconstructionDecoder(
        (1 + 16, 48), (3, 32, 32), layout="NLC", token_grid=(4, 4), num_prefix_tokens=1, **kw
    )
    assert tokens(torch.randn(2, 17, 48)).shape == (2, 3, 32, 32)
    nhwc = ReconstructionDecoder((8, 8, 16), (1, 28, 28), layout="NHWC", **kw)
    assert nhwc(torch.randn(2, 8, 8, 16)).shape == (2, 1, 28, 28)
    video = ReconstructionDecoder((16, 2, 4, 4), (3, 4, 16, 16), layout="NCTHW", **kw)
    assert video.mode == ("trilinear" if interpolate == "bilinear" else "nearest")
    assert video(torch.randn(2, 16, 2, 4, 4)).shape == (2, 3, 4, 16, 16)


def test_decoder_rejects_features_without_geometry_and_bad_input_shapes():
    with pytest.raises(ValueError, match="needs spatial features"):
        ReconstructionDecoder((10, 32), (3, 32, 32), layout="NLC")
    with pytest.raises(ValueError, match="needs spatial features"):
        ReconstructionDecoder((32,), (3, 32, 32), layout="NC")
    with pytest.raises(ValueError, match=r"expected \(C, H, W\)"):
        ReconstructionDecoder((16, 8, 8), (3, 4, 32, 32))
    with pytest.raises(ValueError, match="unknown interpolate"):
        ReconstructionDecoder((16, 8, 8), (3, 32, 32), interpolate="bicubic")
