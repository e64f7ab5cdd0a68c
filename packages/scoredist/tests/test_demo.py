import json
import os
import stat

import numpy as np
import pytest
import torch

from scoredist import UnknownEntryError, mtl_aqa_dives
from scoredist._demo import render_dive, run_demo, write_video
from scoredist._plugins import DATASETS

av = pytest.importorskip("av")


def _motion(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean())


def test_rendering_is_seeded_and_motion_follows_the_scores():
    dives = {d.id: d for d in mtl_aqa_dives()}
    clean, sloppy = dives["01_01"], dives["01_70"]  # execution 9.17 vs 3.67 of 10
    a = render_dive(clean, np.random.default_rng(0))
    assert a.shape == (16, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_dive(clean, np.random.default_rng(0)))
    splash_clean = np.mean([_motion(render_dive(clean, np.random.default_rng(s))[-4:]) for s in range(8)])
    splash_sloppy = np.mean([_motion(render_dive(sloppy, np.random.default_rng(s))[-4:]) for s in range(8)])
    assert splash_sloppy > splash_clean


def test_clips_are_real_video_files(tmp_path):
    frames = render_dive(mtl_aqa_dives()[0], np.random.default_rng(0))
    write_video(frames, tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == frames.shape
    # Lossy (the pixel noise is smoothed away, chroma is subsampled) but the scene survives.
    assert np.corrcoef(decoded.ravel(), frames.ravel())[0, 1] > 0.9
    write_video(frames, tmp_path / "again.mp4")  # the same bytes every time: repeatable demo numbers
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "clip.mp4").read_bytes()


def _metrics(folder):
    return {m: (folder / "aqa" / m / "metrics.jsonl").read_text() for m in ("usdl", "musdl")}


def test_quick_demo_end_to_end_through_a_csv_dataset_entry(csv_dataset, tmp_path, capsys):
    (tmp_path / "splitnet.md").write_text("another package's demo output")
    torch.set_num_threads(2)  # the caller's thread count must not matter: the demo uses one
    try:
        report = run_demo(tmp_path, seed=0, quick=True)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    assert set(report["results"]) == {"usdl", "musdl"}
    assert report["clips"] == {
        "train": 64,
        "test": 32,
        "validation_held_out": 13,
        "frames": 16,
        "size": 32,
        "excluded": [],
    }
    assert report["settings"]["threads"] == 1 and report["machine"]["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert "0.9066" in printed and "0.9273" in printed and "The data differ" in printed
    assert f"through vidio 'csv' from {csv_dataset}" in printed
    assert json.loads((tmp_path / "aqa.json").read_text())["results"]["musdl"]["paper"] == 0.9273
    assert "test-peeking" in (tmp_path / "aqa.md").read_text()
    assert (tmp_path / "aqa.png").stat().st_size > 0
    assert (tmp_path / "splitnet.md").read_text() == "another package's demo output"
    assert len(list((tmp_path / "aqa" / "clips").glob("*.mp4"))) == 96
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("aqa.json", "aqa.md", "aqa.png", "splitnet.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name

    # A second run, called with another thread count, into another folder: the same numbers
    # to the last bit, every epoch of both methods.
    again = tmp_path / "again"
    rerun = run_demo(again, seed=0, quick=True)
    for method, result in report["results"].items():
        timeless = {k: v for k, v in result.items() if k != "seconds"}
        again_timeless = {k: v for k, v in rerun["results"][method].items() if k != "seconds"}
        assert json.dumps(again_timeless, sort_keys=True) == json.dumps(timeless, sort_keys=True)  # NaN too
    assert _metrics(again) == _metrics(tmp_path)


def test_demo_without_a_csv_dataset_says_what_to_install(tmp_path):
    if "csv" in DATASETS:
        pytest.skip("vidio is installed here; `nox -s tests` runs this without it")
    with pytest.raises(UnknownEntryError, match=r"unknown dataset 'csv'.*pip install localkit-vidio"):
        run_demo(tmp_path, quick=True)
