"""The information-flow probe: which depths it measures, what it fits, and what it writes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import splitnet
from splitnet._cli import main
from splitnet._probe import (
    ProbeSettings,
    ReconstructionProbe,
    fit_decoder,
    fit_linear,
    probe,
    probe_points,
)
from splitnet._probeplot import plot_probe


class Images(torch.utils.data.Dataset):
    """Tiny labelled images whose class is the brightness of the left half: linearly separable."""

    mean, std, num_classes = (0.5,), (0.5,), 2

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        images = torch.rand(n, 1, 8, 8, generator=g) * 0.5
        images[:, :, :, :4] += 0.5 * self.labels.view(-1, 1, 1, 1)
        self.images = images

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return (self.images[i] - 0.5) / 0.5, self.labels[i]


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(64, 2),
    )


FAST = ProbeSettings(linear_epochs=2, decoder_epochs=2, batch_size=16)


def tiny_localnet(k=2):
    model = tiny_model()
    return splitnet.split(model, splitnet.plan(model, k, balance="even", input_size=(1, 8, 8)))


def test_probe_points_are_the_block_outputs():
    model = splitnet.create_backbone("cifar_resnet32")
    chain = splitnet.trace(model, torch.randn(2, 3, 32, 32))
    labels = [chain.cuts[i].label for i in probe_points(chain)]
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(5)]
    assert labels[: 1 + len(blocks)] == ["stem", *blocks]
    assert all("[" not in label for label in labels)  # never between a residual add and its ReLU


def test_settings_refuse_values_that_cannot_fit_anything():
    assert ProbeSettings().linear_epochs == 30 and ProbeSettings().train_samples is None
    for bad in (
        {"linear_epochs": 0},
        {"batch_size": 1.5},
        {"train_samples": 0},
        {"seed": -1},
        {"seed": True},
    ):
        with pytest.raises(ValueError, match=f"probe setting {next(iter(bad))} must be an integer"):
            ProbeSettings(**bad)
    for bad in (0.0, -1e-3, math.nan, math.inf):
        with pytest.raises(ValueError, match="probe setting decoder_lr must be a finite number > 0"):
            ProbeSettings(decoder_lr=bad)


def test_the_decoder_is_the_reference_design_and_projects_wide_features():
    narrow = ReconstructionProbe(64, (3, 32, 32))
    assert isinstance(narrow.project, nn.Identity)
    assert [type(m) for m in narrow.decoder] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert narrow.decoder[0].in_channels == 64 and narrow.decoder[0].out_channels == 12
    assert narrow.decoder[3].out_channels == 3 and narrow.decoder[0].kernel_size == (3, 3)
    # the reference's He initialisation by fan-out: std sqrt(2 / (3 * 3 * 12))
    assert narrow.decoder[0].weight.std().item() == pytest.approx(math.sqrt(2 / 108), rel=0.05)
    wide = ReconstructionProbe(256, (3, 32, 32))
    assert wide.project.out_channels == 108 and wide.project.bias is None
    assert wide(torch.randn(2, 256, 4, 4)).shape == (2, 3, 32, 32)


def test_a_linear_probe_separates_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    features = torch.randn(200, 5, generator=g)
    features[:, 0] += 6 * labels
    settings = ProbeSettings(linear_epochs=20, linear_lr=0.05, batch_size=32)
    train_acc, test_acc = fit_linear(
        features[:100], labels[:100], features[100:], labels[100:], 2, settings, g
    )
    assert train_acc == 1.0 and test_acc >= 0.95
    constant = torch.ones(200, 5)
    _, chance = fit_linear(constant[:100], labels[:100], constant[100:], labels[100:], 2, settings, g)
    assert chance == 0.5


def test_the_decoder_reconstructs_images_from_themselves_better_than_from_nothing():
    images = Images(64, 0).images
    settings = ProbeSettings(decoder_epochs=40, decoder_lr=1e-2, batch_size=16)
    g = torch.Generator().manual_seed(0)
    itself = fit_decoder(images[:48], images[:48], images[48:], images[48:], settings, g, 0)
    blank = torch.zeros_like(images)
    nothing = fit_decoder(blank[:48], images[:48], blank[48:], images[48:], settings, g, 0)
    assert itself["psnr_db"] == pytest.approx(10 * math.log10(1 / itself["mse"]))
    assert itself["psnr_db"] > nothing["psnr_db"] + 3


def test_probe_measures_the_input_and_every_block_and_is_repeatable():
    net = tiny_localnet()
    train_set, test_set = Images(48, 1), Images(32, 2)
    result = probe(net, FAST, train_set=train_set, test_set=test_set)
    labels = [d.label for d in result.depths]
    assert labels[0] == "input" and len(labels) == 1 + len(probe_points(net.plan.chain))
    assert result.k == 2 and result.group.endswith("K=2") and len(result.cuts) == 1
    assert [d.stage for d in result.depths][0] is None and {d.stage for d in result.depths[1:]} <= {1, 2}
    assert result.baselines["majority_acc"] == 0.5
    flat = [d for d in result.depths if len(d.shape) == 1]
    assert flat and all(d.recon_psnr_db is None and "no spatial layout" in d.note for d in flat)
    assert result.depths[0].recon_psnr_db is not None
    again = probe(net, FAST, train_set=train_set, test_set=test_set)
    assert again.to_dict()["depths"] == result.to_dict()["depths"]
    assert json.loads(json.dumps(result.to_dict()))["depths"][0]["shape"] == [1, 8, 8]
    assert net.training  # the probe puts the network back as it found it


def test_probe_refuses_what_it_cannot_measure(tmp_path):
    with pytest.raises(ValueError, match="probing a model needs train_set= and test_set="):
        probe(tiny_model())
    unnormalised = torch.utils.data.TensorDataset(torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="train_set must carry mean and std"):
        probe(tiny_model(), FAST, train_set=unnormalised, test_set=Images(4, 0))
    with pytest.raises(TypeError, match="probe takes a run folder, a splitnet.Run or an nn.Module"):
        probe(42)
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        probe(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    for name in ("config.json", "checkpoint.pt"):
        (tmp_path / "half" / name).write_text("{}")
    with pytest.raises(FileNotFoundError, match="unfinished run .*--resume"):
        probe(tmp_path / "half")


def test_the_figure_groups_seeds_and_refuses_mismatched_depths(tmp_path):
    train_set, test_set = Images(32, 1), Images(16, 2)
    results = [
        probe(tiny_model(), FAST, train_set=train_set, test_set=test_set),
        probe(tiny_localnet(), FAST, train_set=train_set, test_set=test_set),
        probe(
            tiny_localnet(),
            ProbeSettings(linear_epochs=2, decoder_epochs=2, batch_size=16, seed=1),
            train_set=train_set,
            test_set=test_set,
        ),
    ]
    path = plot_probe(results, tmp_path / "probe.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shorter = probe(tiny_localnet(), FAST, train_set=train_set, test_set=test_set)
    shorter.depths = shorter.depths[:-1]
    with pytest.raises(ValueError, match="probed at different depths"):
        plot_probe([results[1], shorter], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one probe result"):
        plot_probe([], tmp_path / "none.png")


def test_the_command_probes_finished_runs_and_writes_json_and_png(tmp_path, capsys):
    run = tmp_path / "run"
    splitnet.train(
        splitnet.TrainConfig(
            model="cifar_resnet20",
            dataset="digits",
            dataset_options={"per_class": 2},
            k=2,
            epochs=1,
            batch_size=10,
            max_steps_per_epoch=1,
            progress=False,
            out=str(run),
        )
    )
    argv = ["probe", str(run), "--linear-epochs", "1", "--decoder-epochs", "1", "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "probe")]) == 0
    out = capsys.readouterr().out
    assert "layer3.2" in out and "linear acc" in out and "probe.png" in out
    document = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert document["schema"] == "splitnet.probe/1" and document["runs"][0]["train_samples"] == 20
    assert document["runs"][0]["group"] == "greedy, K=2" and len(document["runs"][0]["depths"]) == 11
    assert (tmp_path / "probe" / "probe.png").read_bytes()[:4] == b"\x89PNG"
    # a probe.json is drawn again without measuring: the same runs, a new figure
    assert (
        main(["probe", str(tmp_path / "probe" / "probe.json"), "--quiet", "--out", str(tmp_path / "again")])
        == 0
    )
    capsys.readouterr()
    assert json.loads((tmp_path / "again" / "probe.json").read_text()) == document
    assert (tmp_path / "again" / "probe.png").is_file()
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    assert main(["probe", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad")]) == 2
    assert "is not a probe.json of splitnet's probe" in capsys.readouterr().err
    assert main(["probe", str(run), str(run), "--out", str(tmp_path / "twice")]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["probe", str(tmp_path), "--out", str(tmp_path / "none")]) == 2
    assert "is not a splitnet run" in capsys.readouterr().err
