"""Auxiliary heads and the decoder, built from many feature shapes and layouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infoloss import AUX_CONFIGS, AuxHead, DenseAuxHead, DGLHead, ReconstructionDecoder

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
        assert strides <= {(2, 2), (1, 1)} and ((2, 2) in strides) == (config[0] != "0" and size > 8)


# The reference code's heads (auxiliary_nets.py): conv width 32, 64, 64 and stride 2, 2, 1
# for 16@32x32, 32@16x16 and 64@8x8; fc hidden feature_dim * widen; convs without bias.
PAPER = [((16, 32, 32), 32, 2), ((32, 16, 16), 64, 2), ((64, 8, 8), 64, 1)]


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
