"""scoredist's defaults are the official MUSDL code's.

Each value is checked against the line of github.com/nzl-thu/MUSDL that fixes it, at commit
205868a826e4df3d0bcac5aa03ca36761aad43cd ("REF" below). Where the reference computes
something (segment starts, decoding, the 4-fold figures), the test restates its arithmetic.
"""

import json

import numpy as np
import pytest
import torch
from scipy import stats

from scoredist import PRESETS, TrainConfig, get_rule, kfold_summary, segment_starts
from scoredist._cli import _parser, build_config, main
from scoredist._heads import PAPER_HIDDEN

MTL, JIGSAWS = PRESETS["mtl-aqa"], PRESETS["jigsaws"]


def test_mtl_aqa_bins_and_decoding():
    # REF MTL-AQA/opts.py lines 21-24: label_max = 104.5, label_min = 0., judge_max = 10., judge_min = 0.
    # REF MTL-AQA/opts.py line 31: output_dim = {'USDL': 101, 'MUSDL': 21}
    assert (MTL.score_bins.low, MTL.score_bins.high, MTL.score_bins.num) == (0.0, 104.5, 101)
    assert (MTL.judge_bins.low, MTL.judge_bins.high, MTL.judge_bins.num) == (0.0, 10.0, 21)
    # REF MTL-AQA/main.py lines 41 and 44: bin k decodes to k * label_max / 100 and k * judge_max / 20.
    k = torch.arange(101, dtype=torch.float64)
    torch.testing.assert_close(MTL.score_bins.centers(torch.float64), k * (104.5 / 100))
    torch.testing.assert_close(MTL.judge_bins.centers(torch.float64), k[:21] * 10.0 / 20)
    # REF MTL-AQA/main.py lines 41 and 44 decode with argmax.
    assert TrainConfig("usdl", MTL.score_bins).decode == "argmax"


def test_mtl_aqa_soft_labels():
    # REF MTL-AQA/dataset.py lines 53-60: norm.pdf(arange(101), loc=s * 100 / 104.5, scale=std),
    # normalised; judges: norm.pdf(arange(21), loc=j * 20 / 10, scale=std), normalised.
    sigma = MTL.sigma
    label = MTL.score_bins.gaussian(torch.tensor([88.0], dtype=torch.float64), sigma, dtype=torch.float64)[0]
    pdf = stats.norm.pdf(np.arange(101), loc=88.0 * 100 / 104.5, scale=sigma)
    np.testing.assert_allclose(label.numpy(), pdf / pdf.sum(), rtol=1e-10)
    judge = MTL.judge_bins.gaussian(torch.tensor([7.5], dtype=torch.float64), sigma, dtype=torch.float64)[0]
    pdf = stats.norm.pdf(np.arange(21), loc=7.5 * 20 / 10, scale=sigma)
    np.testing.assert_allclose(judge.numpy(), pdf / pdf.sum(), rtol=1e-10)


def test_mtl_aqa_optimisation():
    # REF MTL-AQA/config.py lines 11-14: --std default 5.
    assert MTL.sigma == 5.0
    # REF MTL-AQA/config.py lines 67-70: --num_epochs default 100.
    assert MTL.epochs == 100
    # REF MTL-AQA/run.sh lines 2 and 4: USDL --lr 1e-4 --weight_decay 0; MUSDL --lr 1e-4 --weight_decay 1e-5.
    assert dict(MTL.weight_decay) == {"usdl": 0.0, "musdl": 1e-5}
    defaults = TrainConfig("usdl", MTL.score_bins)
    # REF MTL-AQA/config.py lines 27-30 (lr 1e-4), 42-45 (seed 1), 57-60 (train batch 4), 62-65 (test batch 20).
    assert (defaults.lr, defaults.seed, defaults.batch_size, defaults.eval_batch_size) == (1e-4, 1, 4, 20)
    # REF MTL-AQA/main.py line 86: criterion = nn.KLDivLoss(), the element-wise mean.
    assert defaults.kl_reduction == "mean"
    # REF models/evaluator.py lines 11-13: Linear(1024, 256), Linear(256, 128), Linear(128, output_dim).
    assert PAPER_HIDDEN == (256, 128) and defaults.hidden == (256, 128)


def test_mtl_aqa_rule():
    # REF MTL-AQA/opts.py line 34: num_judges = 7; REF MTL-AQA/main.py lines 44-48: the judges'
    # scores sorted, the middle three ([2:5]) summed, times the difficulty.
    assert MTL.rule == "diving"
    g = torch.Generator().manual_seed(0)
    judges = torch.randint(0, 21, (64, 7), generator=g).double() * 0.5
    difficulty = torch.randint(12, 42, (64,), generator=g).double() / 10
    reference = judges.sort()[0][:, 2:5].sum(dim=1) * difficulty
    assert torch.equal(get_rule("diving")(judges, difficulty), reference)


def test_mtl_aqa_segments():
    # REF MTL-AQA/opts.py line 10: num_frames = 103; line 13: segment_points = [0, 10, ..., 80, 87];
    # REF MTL-AQA/main.py lines 115-117: segments 10 * i .. 10 * i + 16 for i < 9, then the last 16 frames.
    assert MTL.segments == (10, 16) and MTL.segment_stride == 10
    assert segment_starts(103, *MTL.segments, stride=MTL.segment_stride) == [
        0,
        10,
        20,
        30,
        40,
        50,
        60,
        70,
        80,
        87,
    ]


def test_jigsaws_bins_rule_and_decoding():
    # REF JIGSAWS/opts.py lines 16-19: label_max = 30, label_min = 6, judge_max = 5, judge_min = 1;
    # line 26: output_dim = {'USDL': 25, 'MUSDL': 5}; line 29: num_judges = 6.
    assert (JIGSAWS.score_bins.low, JIGSAWS.score_bins.high, JIGSAWS.score_bins.num) == (6.0, 30.0, 25)
    assert (JIGSAWS.judge_bins.low, JIGSAWS.judge_bins.high, JIGSAWS.judge_bins.num) == (1.0, 5.0, 5)
    # REF JIGSAWS/main.py lines 84 and 86: bin k decodes to k + label_min (k + judge_min);
    # line 87: the final score is the sum of the six sub-scores.
    torch.testing.assert_close(
        JIGSAWS.score_bins.centers(torch.float64), torch.arange(6, 31, dtype=torch.float64)
    )
    torch.testing.assert_close(
        JIGSAWS.judge_bins.centers(torch.float64), torch.arange(1, 6, dtype=torch.float64)
    )
    assert JIGSAWS.rule == "sum"
    # REF JIGSAWS/main.py lines 23 and 28: norm.pdf(arange(6, 31), loc=s, scale=std), normalised (line 32).
    label = JIGSAWS.score_bins.gaussian(torch.tensor([17.0], dtype=torch.float64), 1.0, dtype=torch.float64)[
        0
    ]
    pdf = stats.norm.pdf(np.arange(6, 31), loc=17.0, scale=1.0)
    np.testing.assert_allclose(label.numpy(), pdf / pdf.sum(), rtol=1e-10)


def test_jigsaws_optimisation_and_segments():
    # REF JIGSAWS/config.py lines 17-20: --std 1; 33-36: --lr 1e-4; 38-41: --weight_decay 0;
    # 43-46: --seed 1; 58-66: batches 4 and 20; 68-71: --num_epochs 80.
    assert (JIGSAWS.sigma, JIGSAWS.epochs, dict(JIGSAWS.weight_decay)) == (
        1.0,
        80,
        {"usdl": 0.0, "musdl": 0.0},
    )
    args = _parser().parse_args(["train", "--dataset", "jigsaws", "--root", "/r", "--model", "b"])
    config, _ = build_config(args, JIGSAWS, None)
    assert (config.lr, config.seed, config.batch_size, config.eval_batch_size) == (1e-4, 1, 4, 20)
    assert (config.sigma, config.epochs, config.weight_decay) == (1.0, 80, 0.0)
    # REF JIGSAWS/opts.py line 10: num_frames = 160; REF JIGSAWS/main.py lines 146-148: segments
    # videos[:, :, i:i + 16] for i in range(0, 160, 16).
    assert JIGSAWS.segments == (10, 16) and JIGSAWS.segment_stride == 16
    assert segment_starts(160, *JIGSAWS.segments, stride=JIGSAWS.segment_stride) == list(range(0, 160, 16))


def _reference_jigsaws_figures(test_rhos: np.ndarray) -> tuple[float, int, float]:
    """REF JIGSAWS/main.py lines 112-188, restated: ``test_rhos[fold, epoch]``."""
    folds, epochs = test_rhos.shape
    rho_best, epoch_best, rho_test_final = 0.0, 0, 0.0
    for epoch in range(epochs):
        avg_rho = test_rhos[:, epoch].sum() / folds  # lines 165, 170: the 4-fold sum over 4
        if epoch >= epochs - 10:  # lines 173-174
            rho_test_final += avg_rho
        if avg_rho > rho_best:  # lines 176-178
            rho_best, epoch_best = avg_rho, epoch
    return rho_best, epoch_best, rho_test_final / 10  # line 188


def test_kfold_figures_equal_the_reference_jigsaws_arithmetic():
    rng = np.random.default_rng(0)
    rhos = rng.uniform(0.2, 0.9, size=(4, 80))
    histories = [
        [{"epoch": e, "split": "test", "spearman": rhos[f, e], "l2": 1.0} for e in range(80)]
        for f in range(4)
    ]
    best, best_epoch, final = _reference_jigsaws_figures(rhos)
    summary = kfold_summary(histories)
    assert summary["last_epochs_mean"]["spearman"] == pytest.approx(final, rel=1e-12)
    assert summary["last_epochs_mean"]["epochs"] == list(range(70, 80))
    assert summary["test_peeking"]["epoch"] == best_epoch
    assert summary["test_peeking"]["spearman"] == pytest.approx(best, rel=1e-12)


# A JIGSAWS-like dataset: 4 folds, six sub-scores of 1..5 summing to the 6..30 rating, 160-frame clips.
FOLDED = """
import torch


class Folded(torch.utils.data.Dataset):
    def __init__(self, root, split, fold=0):
        g = torch.Generator().manual_seed(fold * 2 + (split == "test"))
        n = 4 if split == "test" else 12
        self.judges = torch.randint(1, 6, (n, 6), generator=g).float()
        self.split, self.fold = split, fold

    def __len__(self):
        return len(self.judges)

    def __getitem__(self, i):
        score = self.judges[i].sum()
        video = torch.full((3, 160, 8, 8), float(score) / 30.0)
        return {"video": video, "score": score, "judge_scores": self.judges[i], "id": f"{self.fold}-{self.split}-{i}"}
"""


def test_the_jigsaws_preset_runs_four_folds_and_reports_the_reference_figure(fake_dist, tmp_path, capsys):
    fake_dist("folded", {"vidio.datasets": {"folded": "folded_mod:Folded"}}, {"folded_mod": FOLDED})
    out = tmp_path / "kfold"
    argv = ["train", "--dataset", "folded", "--preset", "jigsaws", "--root", str(tmp_path), "--out", str(out)]
    argv += ["--model", "tiny3d", "--model-opt", "width=2", "--epochs", "2", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fold 4/4" in printed and "mean of the last 2 epochs, the reference's figure" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["folds"]) == 4
    run = json.loads((out / "fold_3" / "run.json").read_text())
    assert run["metadata"]["dataset"]["options"] == {"fold": 3}
    assert run["metadata"]["backbone"]["segments"] == [10, 16]
    assert run["metadata"]["backbone"]["segment_stride"] == 16
    histories = [
        [json.loads(line) for line in (out / f"fold_{k}" / "metrics.jsonl").read_text().splitlines()]
        for k in range(4)
    ]
    rhos = np.array([[r["spearman"] for r in h if r["split"] == "test"] for h in histories])
    _, best_epoch, _ = _reference_jigsaws_figures(np.nan_to_num(rhos, nan=-1.0))
    average = summary["average"]
    assert average["last_epochs_mean"]["spearman"] == pytest.approx(np.mean(rhos), nan_ok=True)
    assert average["test_peeking"]["epoch"] == best_epoch
    assert {"val_selected", "last_epochs_mean", "test_peeking"} <= set(average)


def test_one_fold_of_a_kfold_preset_on_request(fake_dist, tmp_path, capsys):
    fake_dist("folded", {"vidio.datasets": {"folded": "folded_mod:Folded"}}, {"folded_mod": FOLDED})
    argv = ["train", "--dataset", "folded", "--preset", "jigsaws", "--root", str(tmp_path)]
    argv += [
        "--model",
        "tiny3d",
        "--model-opt",
        "width=2",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--dataset-opt", "fold=2"]) == 2
    assert "pass --folds 1 to train on that one fold" in capsys.readouterr().err
    assert main([*argv, "--dataset-opt", "fold=2", "--folds", "1", "--epochs", "1"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["metadata"]["dataset"]["options"] == {"fold": 2}
