"""MUSDL on a video backbone split into local modules, trained on clips vidio decodes.

Every part comes through its entry point: the clips from vidio's ``csv`` dataset (via
scoredist, which reads ``vidio.datasets``), the backbone from the video-backbones plugin
(``splitnet.backbones``), the per-judge heads and the diving rule from scoredist.
"""

from __future__ import annotations

import av
import numpy as np
import torch
from torch import nn

import scoredist
import splitnet

JUDGES = [
    [9.5, 9.0, 9.5, 9.0, 8.5, 9.5, 8.5],
    [6.0, 6.5, 6.0, 5.5, 6.0, 6.5, 6.0],
    [8.0, 7.5, 8.0, 8.0, 7.0, 7.5, 8.5],
    [4.5, 5.0, 4.0, 4.5, 5.0, 5.5, 4.5],
]
DIFFICULTY = [3.2, 2.8, 3.0, 2.0]


def write_clips(folder):
    lines = ["path,score,difficulty," + ",".join(f"judge_{j + 1}" for j in range(7))]
    for i, (judges, dd) in enumerate(zip(JUDGES, DIFFICULTY)):
        with av.open(str(folder / f"dive{i}.mp4"), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for t in range(12):  # a square whose speed follows the judges' mean mark
                frame = np.zeros((48, 64, 3), np.uint8)
                x = int(t * np.mean(judges) / 3) % 52
                frame[16:28, x : x + 12] = 255
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
        final = float(scoredist.get_rule("diving")(torch.tensor([judges]), torch.tensor([dd])))
        lines.append(f"dive{i}.mp4,{final},{dd}," + ",".join(map(str, judges)))
    (folder / "train.csv").write_text("\n".join(lines) + "\n")


class LocalJudgeObjective(nn.Module):
    """A local MUSDL loss at a cut: pool the clip features, one distribution per judge, KL."""

    def __init__(self, channels, bins, sigma):
        super().__init__()
        self.bins, self.sigma = bins, sigma
        self.head = scoredist.MUSDLHead(in_features=channels, num_bins=bins.num, num_judges=7)

    def forward(self, features, inputs, judge_scores):
        return scoredist.kl_loss(
            self.head(features.mean(dim=(2, 3, 4))), self.bins.gaussian(judge_scores, self.sigma)
        )


def test_musdl_with_a_locally_trained_split_video_backbone(tmp_path):
    write_clips(tmp_path)
    data = scoredist.create_dataset("csv", str(tmp_path), "train", num_frames=8, crop_size=32)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    clips, judges = batch["video"], batch["judge_scores"]
    assert clips.shape == (4, 3, 8, 32, 32) and judges.shape == (4, 7)

    torch.manual_seed(0)
    bins = scoredist.ScoreBins.from_step(0.0, 10.0, 0.5)
    backbone = splitnet.create_backbone("video_r3d_18")
    model = nn.Sequential(backbone, scoredist.MUSDLHead(in_features=512, num_bins=bins.num, num_judges=7))
    plan = splitnet.plan(
        model, 2, balance="even", example_input=clips[:2], num_classes=bins.num, measure_memory=False
    )
    cut = plan.cuts[0]
    assert len(cut.shape) == 5  # the cut carries (B, C, T, H, W) clip features
    stages = [plan.chain.module(a, b) for a, b in plan.stages]
    net = splitnet.LocalNet(
        stages,
        [LocalJudgeObjective(cut.shape[1], bins, 1.0)],
        task_loss=lambda out, target: scoredist.kl_loss(out, bins.gaussian(target, 1.0)),
    )
    model.eval()
    net.eval()
    assert torch.equal(net(clips), model(clips))

    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        losses.append([float(v) for v in net.local_step(clips, judges).losses])
        opt.step()
    assert all(np.isfinite(losses).flat)
    assert losses[-1][0] < losses[0][0] and losses[-1][1] < losses[0][1]

    net.eval()
    with torch.no_grad():
        predicted = bins.decode(net(clips).exp(), "expectation")
    final = scoredist.get_rule("diving")(predicted, batch["difficulty"])
    assert predicted.shape == (4, 7) and final.shape == (4,) and bool((final >= 0).all())
