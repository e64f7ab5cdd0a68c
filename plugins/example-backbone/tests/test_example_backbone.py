"""The plugin works through localkit's registries: splitnet builds, splits and trains the
backbone, trains with the objective and refuses a misspelled option; scoredist finds and
applies the rule."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import scoredist
import splitnet


def test_splitnet_creates_the_backbone():
    model = splitnet.create_backbone("example_convnet", num_classes=4)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert splitnet.backbone_provenance("example_convnet")["distribution"] == "localkit-example-backbone"


def test_split_inference_equals_the_model():
    model = splitnet.create_backbone("example_convnet").eval()
    net = splitnet.split(model, splitnet.plan(model, 3)).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x), model(x), rtol=0, atol=1e-5)


def test_trains_locally_with_infopro_from_the_command_line(tmp_path):
    command = [sys.executable, "-m", "splitnet", "train", "--model", "example_convnet"]
    command += ["--dataset", "digits", "--k", "2", "--objective", "infopro", "--epochs", "1"]
    command += ["--max-steps-per-epoch", "2", "--batch-size", "16", "--quiet", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    provenance = json.loads((tmp_path / "config.json").read_text())["provenance"]
    assert provenance["backbone"]["distribution"] == "localkit-example-backbone"
    assert provenance["objective"]["distribution"] == "localkit-infoloss"
    assert json.loads(done.stdout)["final"]


def test_splitnet_trains_each_cut_with_the_objective():
    model = splitnet.create_backbone("example_convnet", num_classes=4)
    net = splitnet.split(
        model, splitnet.plan(model, 3), objective="example_probe", objective_options={"dropout": 0.1}
    )
    assert [o.dropout.p for o in net.objectives] == [0.1, 0.1]
    result = net.local_step(torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,)))
    assert len(result.losses) == 3 and all(torch.isfinite(loss) for loss in result.losses)


def test_a_misspelled_objective_option_stops_the_command(tmp_path):
    command = [sys.executable, "-m", "splitnet", "plan", "--model", "example_convnet", "--k", "2"]
    command += ["--objective", "example_probe", "--objective-opt", "dropuot=0.1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert (
        "objective 'example_probe' from 'localkit-example-backbone 0.1.0' does not accept option"
        in done.stderr
    )
    assert "'dropuot' (did you mean 'dropout'?). It accepts: 'dropout'." in done.stderr


def test_scoredist_finds_and_applies_the_rule():
    assert "median" in scoredist.list_rules()
    judges = torch.tensor([[7.0, 9.0, 8.0], [6.0, 5.0, 10.0]])
    scores = scoredist.apply_rule("median", judges, torch.tensor([2.0, 1.0]))
    assert scores.tolist() == [16.0, 6.0]
    assert scoredist.get_rule("median")(np.array([[1.0, 2.0, 4.0, 9.0]])).tolist() == [3.0]


def test_the_rule_names_itself_when_the_shape_is_wrong():
    with pytest.raises(ValueError, match=r"rule 'median' needs judge scores of shape \(N, J\), got \(3,\)"):
        scoredist.get_rule("median")([7.0, 8.0, 9.0])
