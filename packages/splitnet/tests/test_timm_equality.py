"""Splitting never changes what a model computes: 40 timm architectures, 30+ families."""

from __future__ import annotations

import pytest
import timm
import torch

import splitnet

ARCHITECTURES = [
    "resnet10t",
    "resnext26ts",
    "regnetx_002",
    "convnext_atto",
    "convnextv2_atto",
    "efficientnet_b0",
    "efficientnetv2_rw_t",
    "mobilenetv3_small_050",
    "mobilenetv4_conv_small",
    "ghostnet_050",
    "mixnet_s",
    "rexnet_100",
    "densenet121",
    "dla34",
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "levit_128s",
    "maxvit_nano_rw_256",
    "coatnet_nano_rw_224",
    "eva02_tiny_patch14_224",
    "mambaout_femto",
    "nfnet_l0",
    "hrnet_w18_small",
    "inception_v3",
    "xception41",
    "repvgg_a0",
    "mobilevit_xxs",
    "edgenext_xx_small",
    "poolformer_s12",
    "pvt_v2_b0",
    "tiny_vit_5m_224",
    "hiera_tiny_224",
    "mixer_s16_224",
    "cspresnet50",
    "vovnet39a",
    "hgnetv2_b0",
    "fastvit_t8",
    "efficientformer_l1",
    "cait_xxs24_224",
]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_split_inference_equals_the_unsplit_model(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    cfg = model.pretrained_cfg
    # convolutional families accept any size; smaller inputs keep the suite fast
    size = cfg["input_size"] if cfg.get("fixed_input_size", False) else (3, 128, 128)
    x = torch.randn(2, *size)
    chain = splitnet.trace(model, x)
    k = min(4, chain.num_pieces)
    p = splitnet.plan(model, k, balance="even", example_input=x, measure_memory=False, chain=chain)
    net = splitnet.split(model, p).eval()
    assert net.k == k
    with torch.no_grad():
        reference = model(x)
        assert (net(x) - reference).abs().max().item() <= 1e-5
        h = x
        for stage, cut in zip(net.stages, p.cuts):
            h = stage(h)
            assert tuple(h.shape) == cut.shape


def test_training_mode_behaviour_survives_the_split():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", drop_rate=0.2, drop_path_rate=0.2).train()
    x = torch.randn(2, 3, 224, 224)
    net = splitnet.split(
        model, splitnet.plan(model, 3, balance="even", example_input=x, measure_memory=False)
    )
    torch.manual_seed(1)
    reference = model(x)
    torch.manual_seed(1)
    split_out = net.train()(x)
    assert torch.equal(split_out, reference)
    net.eval()
    model.eval()
    assert torch.equal(net(x), model(x))
    assert not torch.equal(net(x), split_out)
