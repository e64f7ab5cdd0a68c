"""``python -m vidio prepare`` and ``python -m vidio backends``: copies that keep every frame."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import vidio
from vidio import _cli, _prepare
from vidio._cli import main

SETTINGS = _prepare.PrepareSettings(short_side=32, keyframe_interval=8)


@pytest.fixture
def source(tmp_path, make_video):
    """A folder of videos as datasets deliver them: long GOPs, variable rate, nested, other files."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    make_video(src / "sub" / "a.mp4", frames=60, width=128, height=96, options={"g": "50"})
    make_video(src / "vfr.mkv", frames=30, width=96, height=128, frame_ms=[40, 40, 90, 20])
    make_video(src / "b.avi", codec="mpeg4", frames=20, width=64, height=48)
    (src / "notes.txt").write_text("not a video")
    return src


def _copies(dst):
    return sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())


def test_every_frame_and_timestamp_is_kept_at_the_asked_size(source, tmp_path):
    dst = tmp_path / "dst"
    result = _prepare.prepare_folder(source, dst, SETTINGS, workers=2)
    assert sorted(result.written) == ["b.avi", "sub/a.mp4", "vfr.mkv"] and not result.failed
    assert _copies(dst) == ["b.mp4", "sub/a.mp4", "vfr.mp4", "vidio-prepare.json"]
    manifest = json.loads((dst / "vidio-prepare.json").read_text())
    assert manifest == result.manifest
    sizes = {"sub/a.mp4": (42, 32), "vfr.mkv": (32, 42), "b.avi": (42, 32)}
    for name, (width, height) in sizes.items():
        original, copy = vidio.probe(source / name), vidio.probe(dst / manifest["files"][name]["output"])
        assert copy.num_frames == original.num_frames and (copy.width, copy.height) == (width, height)
        np.testing.assert_allclose(
            copy.timestamps - copy.timestamps[0], original.timestamps - original.timestamps[0], atol=1e-3
        )
        assert np.diff(np.append(copy.keyframes, copy.num_frames)).max() <= 8
        entry = manifest["files"][name]
        assert entry["frames"] == original.num_frames
        assert entry["source_bytes"] == (source / name).stat().st_size
        assert entry["output_bytes"] == (dst / entry["output"]).stat().st_size
        assert entry["output_size"] == [width, height] and entry["max_keyframe_interval"] <= 8
        with vidio.open(source / name) as before, vidio.open(dst / entry["output"]) as after:
            indices = np.arange(copy.num_frames)
            expected = before.get(indices, size=(height, width)).astype(np.float64)
            got = after.get(indices).astype(np.float64)
        # frame i of the copy looks like frame i of the original more than like any other frame
        distance = ((got[:, None] - expected[None]) ** 2).mean(axis=(2, 3, 4))
        assert list(distance.argmin(axis=1)) == list(indices) and entry["psnr_db"] >= 20
    totals = manifest["totals"]
    assert totals["videos"] == 3
    assert totals["source_bytes"] == sum(e["source_bytes"] for e in manifest["files"].values())
    assert totals["output_bytes"] == sum(e["output_bytes"] for e in manifest["files"].values())


def test_a_second_run_resumes_and_redoes_only_what_changed(source, tmp_path):
    dst = tmp_path / "dst"
    _prepare.prepare_folder(source, dst, SETTINGS, workers=1)
    stale = dst / "sub" / ".a.mp4.vidio-partial"
    stale.write_bytes(b"left by a killed run")
    again = _prepare.prepare_folder(source, dst, SETTINGS, workers=1)
    assert again.written == [] and sorted(again.skipped) == ["b.avi", "sub/a.mp4", "vfr.mkv"]
    assert not stale.exists()
    mtime = (source / "b.avi").stat().st_mtime_ns
    os.utime(source / "b.avi", ns=(mtime, mtime + 10**9))
    (dst / "vfr.mp4").unlink()
    third = _prepare.prepare_folder(source, dst, SETTINGS, workers=1)
    assert sorted(third.written) == ["b.avi", "vfr.mkv"] and third.skipped == ["sub/a.mp4"]
    other = _prepare.prepare_folder(
        source, dst, _prepare.PrepareSettings(short_side=32, keyframe_interval=4), workers=1
    )
    assert len(other.written) == 3  # other settings: every copy is made again


def test_a_broken_video_fails_alone_and_leaves_no_copy(source, tmp_path):
    data = (source / "sub" / "a.mp4").read_bytes()
    (source / "cut.mp4").write_bytes(data[: len(data) // 2])
    dst = tmp_path / "dst"
    result = _prepare.prepare_folder(source, dst, SETTINGS, workers=1)
    assert list(result.failed) == ["cut.mp4"] and "FFmpeg cannot open it" in result.failed["cut.mp4"]
    assert "cut.mp4" not in _copies(dst) and not list(dst.rglob("*.vidio-partial"))
    manifest = json.loads((dst / "vidio-prepare.json").read_text())
    assert "cut.mp4" not in manifest["files"] and list(manifest["failed"]) == ["cut.mp4"]


def test_folders_and_settings_that_cannot_work_are_refused(source, tmp_path):
    with pytest.raises(_prepare.PrepareError, match="must not be the source folder .* or lie inside it"):
        _prepare.prepare_folder(source, source / "prepared", SETTINGS)
    with pytest.raises(_prepare.PrepareError, match="is not a folder of videos"):
        _prepare.prepare_folder(tmp_path / "nowhere", tmp_path / "dst", SETTINGS)
    shutil.copy(source / "b.avi", source / "b.mp4")
    with pytest.raises(_prepare.PrepareError, match="would both be prepared as .*b.mp4'; rename one"):
        _prepare.prepare_folder(source, tmp_path / "dst", SETTINGS)
    with pytest.raises(ValueError, match="keyframe_interval must be at least 1 frame, not 0"):
        _prepare.PrepareSettings(keyframe_interval=0)
    with pytest.raises(ValueError, match="preset must be one of ultrafast, .*, not 'quick'"):
        _prepare.PrepareSettings(preset="quick")
    for workers in (0, -2, 1.5, True):  # 0 is not "the default": None is
        with pytest.raises(
            ValueError, match=rf"workers must be an integer >= 1, not {workers!r}; leave it out"
        ):
            _prepare.prepare_folder(source, tmp_path / "dst", SETTINGS, workers=workers)
    (tmp_path / "dst").mkdir(exist_ok=True)
    (tmp_path / "dst" / "vidio-prepare.json").write_text("[1, 2]")
    (source / "b.mp4").unlink()
    with pytest.raises(_prepare.PrepareError, match="is not a vidio-prepare manifest; move it away"):
        _prepare.prepare_folder(source, tmp_path / "dst", SETTINGS)


def _x264_settings(path) -> str:
    """The settings x264 writes into its stream (an SEI message: "x264 - core ... options: ...")."""
    data = path.read_bytes()
    start = data.index(b"options: ")
    return data[start : data.index(b"\x00", start)].decode("ascii")


def test_copies_are_tuned_for_decoding_unless_told_otherwise(source, tmp_path):
    """fastdecode (the default) turns off CABAC, deblocking and weighted prediction: about 40%
    less CPU per clip on the benchmark's prepared copy (docs/vidio.md)."""
    _prepare.prepare_folder(source, tmp_path / "fast", SETTINGS, workers=1)
    options = _x264_settings(tmp_path / "fast" / "sub" / "a.mp4")
    assert SETTINGS.tune == "fastdecode"
    assert " cabac=0 " in options and " deblock=0:" in options and " weightp=0 " in options
    plain = _prepare.PrepareSettings(short_side=32, keyframe_interval=8, tune=None)
    _prepare.prepare_folder(source, tmp_path / "plain", plain, workers=1)
    options = _x264_settings(tmp_path / "plain" / "sub" / "a.mp4")
    assert " cabac=1 " in options and " deblock=1:" in options
    with pytest.raises(ValueError, match="tune must be one of fastdecode, .* or None, not 'fast'"):
        _prepare.PrepareSettings(tune="fast")


def test_the_command_line_prepares_with_a_progress_line_per_video(source, tmp_path, capsys):
    dst = tmp_path / "dst"
    argv = ["prepare", str(source), str(dst), "--short-side", "keep", "--keyframe-interval", "8"]
    assert main([*argv, "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("3 prepared, 0 already done, 0 failed; 3 copies take ")
    assert [line.split("]")[1].split(",")[0] for line in err.splitlines()] == [
        " 1/3 videos",
        " 2/3 videos",
        " 3/3 videos",
    ]
    assert vidio.probe(dst / "sub" / "a.mp4").width == 128  # kept
    assert " cabac=0 " in _x264_settings(dst / "sub" / "a.mp4")  # --tune fastdecode by default
    assert main([*argv, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("0 prepared, 3 already done, 0 failed") and err == ""
    assert main(["prepare", str(source), str(dst), "--crf", "60"]) == 2
    assert capsys.readouterr().err == "error: crf must be in [0, 51] (x264's range), not 60\n"
    assert main(["prepare", str(source), str(dst), "--workers", "0"]) == 2
    assert (
        capsys.readouterr().err
        == "error: workers must be an integer >= 1, not 0; leave it out (None) for one per usable CPU\n"
    )
    with pytest.raises(SystemExit):
        main(["prepare", str(source), str(dst), "--short-side", "wide"])
    assert "invalid short_side value: 'wide'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], _prepare.PrepareSettings()),
        (["--short-side", "keep", "--tune", "none"], _prepare.PrepareSettings(short_side=None, tune=None)),
        (["--crf", "30", "--preset", "fast"], _prepare.PrepareSettings(crf=30, preset="fast")),
    ],
)
def test_prepare_flags_left_out_take_the_settings_defaults(tmp_path, monkeypatch, capsys, flags, expected):
    """One place holds the defaults (PrepareSettings); the CLI neither repeats nor overrides them."""
    seen = []

    def fake(src, dst, settings, **kwargs):
        seen.append(settings)
        raise _prepare.PrepareError("stopped here")

    monkeypatch.setattr(_cli, "prepare_folder", fake)
    assert main(["prepare", str(tmp_path / "a"), str(tmp_path / "b"), *flags]) == 2
    assert seen == [expected]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = _prepare.PrepareSettings()
    for shown in (
        f"(default {defaults.short_side};",
        f"(default {defaults.keyframe_interval})",
        f"(default {defaults.crf})",
        f"(default {defaults.preset})",
        f"(default {defaults.tune}:",
    ):
        assert shown in text, shown


def test_backends_lists_every_backend_and_marks_the_default(capsys):
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "* the default (vidio.open(path) without backend=)"
    by_name = {line[2:].split()[0]: line for line in lines[:-1]}
    assert set(by_name) == set(vidio.list_decoders())
    assert by_name["pyav"].startswith("* pyav") and " available " in by_name["pyav"]
    assert main(["backends", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed] == vidio.list_decoders()
    assert [s["name"] for s in listed if s["default"]] == ["pyav"]
