"""InfoPro's default weights against the reference code's command table, row by row.

Every value below is transcribed from github.com/blackfeather-wang/InfoPro-Pytorch,
``Experiments on CIFAR-SVHN-STL10/comand.sh`` (commit a38362a), at the line given: the
flags ``--ixx_1 --ixy_1 --ixx_2 --ixy_2`` of the command for that network, dataset, split
(``--balanced_memory``: InfoPro*) and ``--local_module_num`` K.
"""

from __future__ import annotations

import logging

import pytest
import torch

from infoloss import PAPER_LAMBDAS, CutContext, infopro, paper_lambdas

# (comand.sh line, --layers, --dataset, --balanced_memory, K, ixx_1, ixy_1, ixx_2, ixy_2)
REFERENCE = [
    (7, 32, "cifar10", False, 2, 5, 1, 0, 0),
    (8, 32, "cifar10", False, 4, 6, 0, 1, 2),
    (9, 32, "cifar10", False, 8, 5, 0, 0, 2),
    (10, 32, "cifar10", False, 16, 5, 0.05, 0.2, 0.5),
    (15, 110, "cifar10", False, 2, 5, 0.5, 0, 0),
    (16, 110, "cifar10", False, 4, 1, 0, 0, 1),
    (17, 110, "cifar10", False, 8, 5, 0, 0, 1),
    (18, 110, "cifar10", False, 16, 5, 0, 0.5, 1),
    (23, 110, "cifar10", True, 2, 5, 0.1, 0, 0),
    (24, 110, "cifar10", True, 3, 5, 0, 5, 0.1),
    (25, 110, "cifar10", True, 4, 5, 0, 5, 0.1),
    (34, 110, "stl10", False, 2, 10, 1, 0, 0),
    (35, 110, "stl10", False, 4, 20, 0.2, 5, 2),
    (36, 110, "stl10", False, 8, 20, 0.2, 5, 1),
    (37, 110, "stl10", False, 16, 20, 0.5, 10, 0.1),
    (42, 110, "stl10", True, 2, 20, 1, 0, 0),
    (43, 110, "stl10", True, 3, 20, 0.5, 5, 2),
    (44, 110, "stl10", True, 4, 20, 0.5, 10, 1),
    (53, 110, "svhn", False, 2, 1, 0.1, 0, 0),
    (54, 110, "svhn", False, 4, 5, 0, 0.5, 1),
    (55, 110, "svhn", False, 8, 5, 0, 0.5, 2),
    (56, 110, "svhn", False, 16, 5, 0.2, 0.5, 1),
]


@pytest.mark.parametrize(
    ("line", "depth", "dataset", "star", "k", "ixx_1", "ixy_1", "ixx_2", "ixy_2"), REFERENCE
)
def test_every_row_of_the_reference_command_table(line, depth, dataset, star, k, ixx_1, ixy_1, ixx_2, ixy_2):
    chosen = paper_lambdas(
        k - 1, backbone=f"cifar_resnet{depth}", dataset=dataset, named_plan="infopro*" if star else "infopro"
    )
    assert (chosen.lambda_recon, chosen.lambda_task) == ((ixx_1, ixx_2), (ixy_1, ixy_2))
    assert (chosen.line, chosen.k, chosen.fallbacks) == (line, k, ())
    cuts = "infopro*" if star else "infopro"
    assert PAPER_LAMBDAS[f"resnet{depth}", dataset, cuts][k] == ((ixx_1, ixx_2), (ixy_1, ixy_2))


def test_the_table_has_exactly_the_reference_rows():
    rows = {(f"resnet{d}", ds, "infopro*" if star else "infopro", k) for _, d, ds, star, k, *_ in REFERENCE}
    assert {(*row, k) for row, by_k in PAPER_LAMBDAS.items() for k in by_k} == rows


def test_the_stl10_infopro_star_plan_takes_the_star_rows():
    chosen = paper_lambdas(2, backbone="cifar_resnet110", dataset="stl10", named_plan="infopro*-stl10")
    assert chosen.line == 43 and chosen.cuts == "infopro*"


@pytest.mark.parametrize(
    ("asked", "row", "fallbacks"),
    [
        (
            {"backbone": "cifar_resnet56", "dataset": "cifar10"},
            ("resnet32", "cifar10", "infopro", 4),
            ["cifar_resnet56 -> the nearest tuned depth, ResNet-32"],
        ),
        (
            {"backbone": "cifar_resnet1202", "dataset": "svhn"},
            ("resnet110", "svhn", "infopro", 4),
            ["cifar_resnet1202 -> the nearest tuned depth, ResNet-110"],
        ),
        (
            {"backbone": "resnet50", "dataset": "imagenet"},
            ("resnet110", "cifar10", "infopro", 4),
            ["resnet50 is not in the table -> ResNet-110", "ResNet-110 was not tuned on imagenet -> cifar10"],
        ),
        (
            {"backbone": "cifar_resnet32", "dataset": "svhn", "named_plan": "infopro*"},
            ("resnet32", "cifar10", "infopro", 4),
            [
                "ResNet-32 was not tuned on svhn -> cifar10",
                "no InfoPro* row for ResNet-32 on cifar10 -> InfoPro's",
            ],
        ),
        (
            {},
            ("resnet110", "cifar10", "infopro", 4),
            ["no network named -> ResNet-110", "no dataset named -> cifar10"],
        ),
    ],
)
def test_what_the_table_lacks_falls_back_step_by_step(asked, row, fallbacks):
    chosen = paper_lambdas(4, **asked)  # K=5 is never tuned: the nearest K on a log2 scale is 4
    assert (chosen.network, chosen.dataset, chosen.cuts, chosen.k) == row
    assert list(chosen.fallbacks) == [*fallbacks, "K=5 is not tuned -> K=4, the nearest on a log2 scale"]
    assert "our fallback: " in chosen.describe()


def test_infopro_takes_its_weights_from_the_context_and_says_where_from(caplog):
    def context(**fields):
        return CutContext(feature_shape=(16, 32, 32), num_classes=10, input_shape=(3, 32, 32), **fields)

    resnet32 = [
        infopro(context(index=i, num_cuts=3, backbone="cifar_resnet32", dataset="cifar10")) for i in range(3)
    ]
    # comand.sh line 8: --ixx_1 6 --ixy_1 0 --ixx_2 1 --ixy_2 2, linear over the three cuts
    assert [o.lambda_recon for o in resnet32] == [6.0, 3.5, 1.0]
    assert [o.lambda_task for o in resnet32] == [0.0, 1.0, 2.0]
    assert resnet32[0].lambda_source == "comand.sh line 8 (ResNet-32 + InfoPro, cifar10, K=4)"
    assert "lambda_recon=6, lambda_task=0 (comand.sh line 8" in repr(resnet32[0])
    with caplog.at_level(logging.DEBUG, logger="infoloss"):
        star = infopro(
            context(index=0, num_cuts=2, backbone="cifar_resnet110", dataset="stl10", named_plan="infopro*")
        )
    assert (star.lambda_recon_pair, star.lambda_task_pair) == ((20.0, 5.0), (0.5, 2.0))  # line 43
    assert "comand.sh line 43 (ResNet-110 + InfoPro*, stl10, K=3)" in caplog.text
    unknown = infopro(context(index=0, num_cuts=4, backbone="vit_tiny_patch16_224"))
    assert "our fallback: vit_tiny_patch16_224 is not in the table -> ResNet-110" in unknown.lambda_source


def test_given_weights_override_the_table():
    context = CutContext(
        feature_shape=(16, 32, 32),
        num_classes=10,
        input_shape=(3, 32, 32),
        num_cuts=3,
        backbone="cifar_resnet32",
    )
    both = infopro(context, lambda_recon="2,0", lambda_task=1)
    assert (both.lambda_recon_pair, both.lambda_task_pair, both.lambda_source) == (
        (2.0, 0.0),
        (1.0, 1.0),
        "given",
    )
    one = infopro(context, lambda_recon=3)
    assert (one.lambda_recon_pair, one.lambda_task_pair) == ((3.0, 3.0), (0.0, 2.0))
    assert one.lambda_source.startswith("lambda_recon given, the other from comand.sh line 8")
    features = torch.randn(4, 16, 32, 32)
    assert torch.isfinite(one(features, torch.rand(4, 3, 32, 32), torch.randint(10, (4,))))
