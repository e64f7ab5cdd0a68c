"""The objectives: each loss against a reference computation, the schedule, and the errors."""

from __future__ import annotations

import inspect

import pytest
import torch

from infoloss import CutContext, DGLObjective, GreedyAuxObjective, InfoProObjective, dgl, greedy_aux, infopro

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def context(**overrides):
    """What splitnet passes for a CIFAR-like cut, with ``overrides``: a frozen ``CutContext``."""
    base = {
        "feature_shape": (16, 8, 8),
        "layout": "NCHW",
        "token_grid": None,
        "num_prefix_tokens": 0,
        "input_shape": (3, 8, 8),
        "input_mean": CIFAR_MEAN,
        "input_std": CIFAR_STD,
        "num_classes": 4,
        "task": "classification",
        "index": 1,
        "num_cuts": 3,
    }
    return CutContext(**{**base, **overrides})


def batch(n=6, shape=(16, 8, 8), seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, *shape, generator=gen, dtype=dtype, requires_grad=True)
    images = torch.rand(n, 3, 8, 8, generator=gen, dtype=dtype)
    mean = torch.tensor(CIFAR_MEAN, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=dtype).view(1, 3, 1, 1)
    labels = torch.tensor([0, 1, 0, 1, 2, 3][:n] + [0] * max(0, n - 6))
    return features, images, (images - mean) / std, labels


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("recon", ["bce", "mse"])
def test_infopro_is_the_weighted_sum_of_reference_terms(ref, recon):
    objective = infopro(context(), recon=recon).double()
    assert (objective.lambda_recon, objective.lambda_task) == (0.5, 0.5)  # K=4 paper defaults, middle cut
    features, images, inputs, labels = batch()
    loss = objective(features, inputs, labels)

    reference_recon = ref.bce_from_logits if recon == "bce" else ref.mse_from_logits
    want = 0.5 * reference_recon(objective.decoder(features), images) + 0.5 * ref.supcon(
        objective.task_term.head(features), labels.tolist(), 0.07
    )
    # input_mean/input_std are float32 buffers: the targets agree to float32 rounding.
    torch.testing.assert_close(loss, want, rtol=1e-7, atol=1e-9)
    params = [objective.decoder.body[0].weight, objective.task_term.head.net[0].weight]
    for got, expected in zip(grads(loss, features, *params), grads(want, features, *params)):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


def test_infopro_cross_entropy_task_term(ref):
    objective = infopro(context(), task_loss="cross_entropy", lambda_recon=0, lambda_task=2).double()
    assert objective.decoder is None
    features, _, inputs, labels = batch()
    loss = objective(features, inputs, labels)
    want = 2 * ref.cross_entropy(objective.task_term.head(features), labels.tolist())
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grads(loss, features)[0], grads(want, features)[0])


def test_reconstruction_target_is_the_unnormalised_image():
    objective = infopro(context())
    _, images, inputs, _ = batch(dtype=torch.float32)
    torch.testing.assert_close(objective.reconstruction_target(inputs), images, rtol=1e-5, atol=1e-6)
    erased = inputs.clone()
    erased[:, :, :2] = 10.0  # random erasing after normalisation
    assert objective.reconstruction_target(erased).max() == 1.0


def test_inputs_already_in_unit_range_need_no_statistics(ref):
    objective = infopro(context(input_mean=None, input_std=None), lambda_task=0, lambda_recon=1).double()
    features, images, inputs, labels = batch()
    loss = objective(features, images, labels)
    torch.testing.assert_close(loss, ref.bce_from_logits(objective.decoder(features), images))
    with pytest.raises(
        ValueError, match=r"infopro \(cut 1 of 3\).*look normalised: pass input_mean and input_std"
    ):
        objective(features, inputs, labels)


@pytest.mark.parametrize(
    ("num_cuts", "recon", "task"),
    [
        (1, [5], [0.5]),  # K=2: (5, 0.5) -> (0, 0)
        (2, [1, 0], [0, 1]),  # K=3 takes K=4's setting
        (3, [1, 0.5, 0], [0, 0.5, 1]),  # K=4: (1, 0) -> (0, 1)
        (7, [5, 25 / 6, 10 / 3, 2.5, 5 / 3, 5 / 6, 0], [0, 1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6, 1]),  # K=8
    ],
)
def test_default_weights_follow_the_papers_schedule(num_cuts, recon, task):
    objectives = [infopro(context(index=i, num_cuts=num_cuts)) for i in range(num_cuts)]
    assert [o.lambda_recon for o in objectives] == pytest.approx(recon, rel=1e-12, abs=1e-15)
    assert [o.lambda_task for o in objectives] == pytest.approx(task, rel=1e-12, abs=1e-15)
    # A net whose weight is 0 at a cut is not built.
    assert [o.decoder is not None for o in objectives] == [w > 0 for w in recon]
    assert [o.task_term is not None for o in objectives] == [w > 0 for w in task]


@pytest.mark.parametrize(
    ("value", "pair"),
    [(5, (5.0, 5.0)), ("5", (5.0, 5.0)), ("5,0", (5.0, 0.0)), (" 5, 0.5 ", (5.0, 0.5)), ((2, 1), (2.0, 1.0))],
)
def test_lambda_options_take_constants_pairs_and_strings(value, pair):
    objective = infopro(context(index=2, num_cuts=3), lambda_recon=value, lambda_task="1")
    assert objective.lambda_recon_pair == pair
    assert objective.lambda_recon == pytest.approx(pair[1])


def test_string_options_from_the_command_line():
    objective = infopro(
        context(),
        task_loss="cross-entropy",
        recon="MSE",
        aux_config="2C2F",
        widen="2",
        feature_dim="64",
        temperature="0.1",
        interpolate="nearest",
        aux_channels="40",
        check_inputs="false",
    )
    assert (objective.task_loss, objective.recon, objective.check_inputs) == ("cross_entropy", "mse", False)
    assert objective.task_term.head.config == "2c2f" and objective.task_term.head.width == 40
    assert objective.decoder.mode == "nearest"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lambda_recon": "a,b"}, "lambda_recon='a,b' is not a number or a 'first,last' pair"),
        ({"lambda_recon": "1,2,3"}, "is not a number or a 'first,last' pair"),
        ({"lambda_task": "-1"}, "non-negative"),
        ({"aux_config": "3c3f"}, "aux_config: unknown auxiliary net config"),
        ({"task_loss": "triplet"}, "task_loss='triplet' is not one of 'contrast', 'cross_entropy'"),
        ({"recon": "l1"}, "recon='l1'"),
        ({"widen": "0"}, "widen"),
        ({"temperature": "0"}, "temperature"),
        ({"feature_dim": "1.5"}, "feature_dim='1.5' is not an integer"),
        ({"check_inputs": "maybe"}, "check_inputs='maybe' is not a boolean"),
        ({"lambda_recon": "5,0", "lambda_task": "0.5,0", "index": 2}, "both 0 at this cut"),
    ],
)
def test_bad_options_are_named(options, message):
    cut = {name: value for name, value in options.items() if name == "index"}
    options = {name: value for name, value in options.items() if name != "index"}
    with pytest.raises(ValueError, match=r"infopro \(cut \d of 3\).*" + message.replace("(", r"\(")):
        infopro(context(**cut), **options)


def test_labels_out_of_range_are_refused_with_the_fix():
    objective = infopro(context())
    features, _, inputs, labels = batch(dtype=torch.float32)
    for bad in (4, -1):
        labels[0] = bad
        with pytest.raises(
            ValueError, match=r"infopro \(cut 1 of 3\): labels must be in 0 .. 3.*num_classes"
        ):
            objective(features, inputs, labels)


@pytest.mark.parametrize(
    ("features", "targets", "message"),
    [
        (
            torch.randn(6, 16, 4, 4),
            torch.zeros(6, dtype=torch.long),
            r"built for features of shape \(B, 16, 8, 8\)",
        ),
        (torch.randn(6, 8, 8, 16), torch.zeros(6, dtype=torch.long), r"built for features"),
        (torch.randn(6, 16, 8, 8), torch.zeros(5, dtype=torch.long), r"targets must be \(B,\) with B = 6"),
        (torch.randn(6, 16, 8, 8), torch.zeros(6, 1, dtype=torch.long), r"targets must be \(B,\)"),
        (torch.randn(6, 16, 8, 8), torch.zeros(6), "integer class indices"),
    ],
)
def test_shapes_that_differ_from_the_built_ones_are_refused(features, targets, message):
    objective = infopro(context())
    with pytest.raises(ValueError, match=message):
        objective(features, torch.zeros(6, 3, 8, 8), targets)


def test_inputs_must_match_the_input_shape():
    objective = infopro(context())
    features, _, _, labels = batch(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"inputs must be \(B, 3, 8, 8\)"):
        objective(features, torch.zeros(6, 3, 16, 16), labels)
    with pytest.raises(ValueError, match="5 inputs for a batch of 6"):
        objective(features, torch.zeros(5, 3, 8, 8), labels)


def test_checks_can_be_switched_off_but_shapes_are_always_checked():
    objective = infopro(context(), check_inputs=False)
    features, _, inputs, labels = batch(dtype=torch.float32)
    labels[0] = 3  # still in range; an out-of-range label would now reach the loss unchecked
    assert torch.isfinite(objective(features, inputs, labels))
    with pytest.raises(ValueError, match="built for features"):
        objective(features[:, :8], inputs, labels)


@pytest.mark.parametrize(
    ("overrides", "options", "message"),
    [
        (
            {"feature_shape": (32,), "layout": "NC"},
            {},
            "reconstruction needs spatial features.*lambda_recon=0",
        ),
        ({"feature_shape": (17, 32), "layout": "NLC", "num_prefix_tokens": 1}, {}, "pass token_grid"),
        ({"input_shape": None}, {}, "reconstruction needs input_shape"),
        ({"input_std": None}, {}, "give both input_mean and input_std"),
        ({"input_std": (0.2, 0.2)}, {}, "input_std has 2 values for 3 input channels"),
        (
            {"task": "segmentation"},
            {"task_loss": "contrast"},
            "for segmentation targets use task_loss=cross_entropy",
        ),
        ({"task": "detection"}, {}, "unknown task 'detection'"),
        ({"index": 3}, {}, "cut index must be in 0 .. num_cuts - 1"),
        ({"feature_shape": (16, 8)}, {}, "layout NCHW needs 3"),
    ],
)
def test_invalid_context_is_refused(overrides, options, message):
    with pytest.raises(ValueError, match=message):
        infopro(context(**overrides), **options)


def test_vectors_and_ungridded_tokens_work_without_reconstruction():
    for shape, extra in [((32,), {"layout": "NC"}), ((17, 32), {"layout": "NLC", "num_prefix_tokens": 1})]:
        objective = infopro(context(feature_shape=shape, **extra), lambda_recon=0, lambda_task=1)
        assert torch.isfinite(objective(torch.randn(6, *shape), None, torch.tensor([0, 1, 0, 1, 2, 3])))


def test_vit_tokens_on_a_grid_with_prefix_tokens(ref):
    ctx = context(
        feature_shape=(1 + 16, 32),
        layout="NLC",
        token_grid=(4, 4),
        num_prefix_tokens=1,
        input_shape=(3, 8, 8),
    )
    objective = infopro(ctx).double()
    features, _, inputs, labels = batch(shape=(17, 32))
    loss = objective(features, inputs, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    (gradient,) = grads(loss, features)
    assert gradient[:, 0].abs().max() == 0 and gradient[:, 1:].abs().max() > 0


def test_video_reconstruction():
    ctx = context(feature_shape=(8, 2, 4, 4), layout="NCTHW", input_shape=(3, 4, 8, 8))
    objective = infopro(ctx)
    inputs = torch.randn(4, 3, 4, 8, 8)
    assert torch.isfinite(objective(torch.randn(4, 8, 2, 4, 4), inputs, torch.tensor([0, 1, 0, 1])))


def segmentation_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 5, (2, 8, 8), generator=gen)
    targets[0, :3] = 255
    targets[1, :, :2] = 255
    return targets


def test_infopro_for_segmentation_uses_a_dense_head_and_ignores_255(ref):
    objective = infopro(context(task="segmentation", num_classes=5)).double()
    assert objective.task_loss == "cross_entropy"
    features, _, inputs, _ = batch(n=2)
    targets = segmentation_batch()
    loss = objective(features, inputs, targets)
    want = 0.5 * ref.bce_from_logits(objective.decoder(features), objective.reconstruction_target(inputs))
    want = want + 0.5 * ref.dense_cross_entropy(objective.task_term.head(features, size=(8, 8)), targets)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grads(loss, features)[0], grads(want, features)[0])


def test_greedy_aux_is_the_cross_entropy_of_the_head(ref):
    objective = greedy_aux(context(), aux_config="1c3f").double()
    assert not any(name.startswith("decoder") for name, _ in objective.named_modules())
    features, _, _, labels = batch()
    loss = objective(features, None, labels)
    want = ref.cross_entropy(objective.task_term.head(features), labels.tolist())
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grads(loss, features)[0], grads(want, features)[0])


def test_greedy_aux_0c1f_is_the_papers_greedy_sl(ref):
    objective = greedy_aux(context(), aux_config="0c1f").double()
    features, _, _, labels = batch()
    linear = objective.task_term.head.net[-1]
    logits = features.mean(dim=(2, 3)) @ linear.weight.T + linear.bias
    torch.testing.assert_close(objective(features, None, labels), ref.cross_entropy(logits, labels.tolist()))


def test_greedy_aux_for_segmentation(ref):
    objective = greedy_aux(context(task="segmentation", num_classes=5)).double()
    features, *_ = batch(n=2)
    targets = segmentation_batch()
    loss = objective(features, None, targets)
    want = ref.dense_cross_entropy(objective.task_term.head(features, size=(8, 8)), targets)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grads(loss, features)[0], grads(want, features)[0])
    everything_ignored = torch.full_like(targets, 255)
    empty = objective(features, None, everything_ignored)
    assert empty.item() == 0.0 and torch.isfinite(grads(empty, features)[0]).all()


def test_segmentation_labels_out_of_range_are_refused_but_255_is_not():
    objective = greedy_aux(context(task="segmentation", num_classes=5))
    features = torch.randn(2, 16, 8, 8)
    targets = segmentation_batch()
    objective(features, None, targets)
    targets[0, 0, 0] = 254
    with pytest.raises(
        ValueError, match=r"greedy-aux \(cut 1 of 3\): labels must be in 0 .. 4 or 255 \(ignored\)"
    ):
        objective(features, None, targets)
    with pytest.raises(ValueError, match=r"segmentation targets must be \(B, H, W\)"):
        objective(features, None, torch.zeros(2, dtype=torch.long))


def test_dgl_is_the_cross_entropy_of_the_dgl_head(ref):
    objective = dgl(context(feature_shape=(16, 16, 16))).double()
    features, _, _, labels = batch(shape=(16, 16, 16))
    loss = objective(features, None, labels)
    want = ref.cross_entropy(objective.head(features), labels.tolist())
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grads(loss, features)[0], grads(want, features)[0])


def test_dgl_refuses_segmentation_and_video():
    with pytest.raises(ValueError, match=r"dgl \(cut 1 of 3\).*use greedy-aux"):
        dgl(context(task="segmentation"))
    with pytest.raises(ValueError, match=r"dgl \(cut 1 of 3\): DGLHead: video"):
        dgl(context(feature_shape=(8, 2, 4, 4), layout="NCTHW"))


@pytest.mark.parametrize(
    ("factory", "cls"), [(infopro, InfoProObjective), (greedy_aux, GreedyAuxObjective), (dgl, DGLObjective)]
)
def test_objectives_train_their_aux_nets(factory, cls):
    torch.manual_seed(0)
    objective = factory(context())
    assert type(objective) is cls
    features, _, inputs, labels = batch(dtype=torch.float32)
    objective(features, inputs, labels).backward()
    assert all(p.grad is not None for p in objective.parameters())
    assert features.grad is not None


@pytest.mark.parametrize("factory", [infopro, greedy_aux, dgl])
def test_objectives_run_under_autocast_with_uint8_targets(factory):
    # splitnet runs objectives under torch.autocast; masks and labels often arrive as uint8.
    objective = factory(context())
    features = torch.randn(6, 16, 8, 8, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 2, 3], dtype=torch.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = objective(features, torch.randn(6, 3, 8, 8), labels)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and features.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("factory", "typo", "suggestion"),
    [
        (infopro, "lambda_recn", "lambda_recon"),
        (infopro, "temprature", "temperature"),
        (greedy_aux, "aux_confg", "aux_config"),
        (dgl, "aux_typ", "aux_type"),
    ],
)
def test_a_misspelled_option_never_runs_with_the_default(factory, typo, suggestion):
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{typo}'"):
        factory(context(), **{typo: "5"})
    assert suggestion in inspect.signature(factory).parameters


def test_context_fields_are_not_options():
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_classes'"):
        infopro(context(), num_classes=3)


def test_the_old_keyword_context_is_refused_with_the_fix():
    with pytest.raises(
        TypeError,
        match=r"infopro: the first argument must be the cut's localkit_registry\.CutContext, got dict",
    ):
        infopro({"feature_shape": (16, 8, 8), "num_classes": 4})
