"""Random 16-frame clips at 224x224: every way to decode them, from an original and a prepared copy.

Two videos, written with PyAV on first use and cached in ``<out>``:

- the original: 20 s of 1280x720 H.264 at 30 fps (libx264 veryfast CRF 23, a keyframe every
  2 s as YouTube recommends for uploads, B-frames on: x264's defaults otherwise);
- a copy prepared for training: the original transcoded to 456x256 (the 256-pixel short side
  MTL-AQA's reference decodes at, even width for 4:2:0) with a keyframe at least every 16
  frames (one clip), same encoder settings otherwise.

Every method reads clips in processes of its own: one DataLoader worker ("1 process"), and
``--workers`` DataLoader workers. Runs are interleaved in rounds (both videos, every method in
a rotating order, both worker counts), so a change of load on a shared machine hits all
methods alike. Per run: clips per second and CPU-seconds per clip of the decoding processes
(all their threads, plus their child processes: vidio's decord process), both counted from
each process's first clip on, as in an epoch of real length (start-up is reported apart);
and for vidio's decord backend, how often its decord process was replaced, per 1,000 clips.
Last, memory over thousands of clips read in this process. Writes ``<out>/vidio_decode.json``
and prints Markdown tables.

Usage:
    python packages/vidio/benchmarks/bench_decode.py --out runs/bench [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import platform
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

import vidio
from vidio import _decord  # the decord process of the calling process: its CPU time and restarts

SIZE = (224, 224)
CLIP = 16
FPS = 30
PREPARED_SIZE = (256, 456)
PREPARED_KEYFRAME_INTERVAL = 16
ENCODER = {"preset": "veryfast", "crf": "23"}


def make_video(path: Path, seconds: int) -> None:
    """Encode a panning textured scene with a moving box and light sensor-like noise."""
    width, height = 1280, 720
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (height // 16 + 1, (width + FPS * seconds * 4) // 16 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(tiles, 16, 0), 16, 1).astype(np.uint16)
    texture = (
        (texture + np.roll(texture, 8, 1) + np.roll(texture, 8, 0) + np.roll(texture, (8, 8), (0, 1))) // 4
    ).astype(np.uint8)
    noise = [rng.integers(0, 6, (height, width, 1), dtype=np.uint8) for _ in range(5)]
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {**ENCODER, "g": str(2 * FPS)}
        for i in range(FPS * seconds):
            image = texture[:height, i * 4 : i * 4 + width] + noise[i % 5]
            top, left = 100 + int(200 * np.sin(i / 15)), (i * 9) % (width - 120)
            image[top : top + 120, left : left + 120] = (255, 64, 32)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    partial.rename(path)


def prepare_copy(source: Path, path: Path) -> None:
    """Transcode ``source`` to the training resolution with a short keyframe interval."""
    height, width = PREPARED_SIZE
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(source)) as original, av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {**ENCODER, "g": str(PREPARED_KEYFRAME_INTERVAL)}
        for i, frame in enumerate(original.decode(video=0)):
            scaled = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BILINEAR")
            scaled.pts, scaled.time_base = i, fractions.Fraction(1, FPS)
            container.mux(stream.encode(scaled))
        container.mux(stream.encode())
    partial.rename(path)


def _pyav_wanted_frames(path: str, indices: np.ndarray, convert) -> np.ndarray:
    """Seek to the keyframe before ``indices[0]``, decode forward, ``convert`` only the wanted frames."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1 / (stream.average_rate * stream.time_base)
        container.seek(int(indices[0] * step), stream=stream, backward=True)
        wanted, frames = set(indices.tolist()), {}
        for frame in container.decode(stream):
            index = round(frame.pts / step)
            if index in wanted:
                frames[index] = convert(frame)
            if index >= indices[-1]:
                break
    return np.stack([frames[i] for i in indices])


def pyav_full_frames(path: str, indices: np.ndarray) -> np.ndarray:
    """PyAV the common way: seek, decode, full-size RGB for each wanted frame, resize in torch."""
    full = _pyav_wanted_frames(path, indices, lambda frame: frame.to_ndarray(format="rgb24"))
    clip = torch.from_numpy(full).permute(0, 3, 1, 2).float()
    return (
        F.interpolate(clip, size=SIZE, mode="bilinear", antialias=True)
        .round()
        .byte()
        .permute(0, 2, 3, 1)
        .numpy()
    )


def pyav_scaled(path: str, indices: np.ndarray) -> np.ndarray:
    """PyAV done carefully: seek, decode, scale only the wanted frames with one swscale context."""
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()
    return _pyav_wanted_frames(
        path,
        indices,
        lambda frame: scaler.reformat(frame, width=SIZE[1], height=SIZE[0], format="rgb24").to_ndarray(),
    )


def decord_new_reader(path: str, indices: np.ndarray) -> np.ndarray:
    import decord

    return decord.VideoReader(path, width=SIZE[1], height=SIZE[0]).get_batch(indices.tolist()).asnumpy()


_decord_readers: dict = {}


def decord_one_reader(path: str, indices: np.ndarray) -> np.ndarray:
    """Bare decord with one reader per file and process (what a careful user caches)."""
    import decord

    key = (os.getpid(), path)
    if key not in _decord_readers:
        _decord_readers[key] = decord.VideoReader(path, width=SIZE[1], height=SIZE[0])
    return _decord_readers[key].get_batch(indices.tolist()).asnumpy()


def vidio_decord(path: str, indices: np.ndarray) -> np.ndarray:
    with vidio.open(path, backend="decord") as video:
        return video.get(indices, size=SIZE)


def vidio_pyav(path: str, indices: np.ndarray) -> np.ndarray:
    with vidio.open(path, backend="pyav") as video:
        return video.get(indices, size=SIZE)


VIDIO_DECORD = "vidio, decord backend"
METHODS = {
    "PyAV: full frames, resize in torch": pyav_full_frames,
    "PyAV: scale while decoding": pyav_scaled,
    "vidio, pyav backend": vidio_pyav,
    "bare decord: new reader per clip": decord_new_reader,
    "bare decord: one reader per process": decord_one_reader,
    VIDIO_DECORD: vidio_decord,
}


def _process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def work_so_far() -> tuple[float, int]:
    """CPU-seconds this process has used (all threads, reaped children, its live decord
    process) and how many decord processes vidio has started in it."""
    times = os.times()
    cpu = times.user + times.system + times.children_user + times.children_system
    server = _decord._current_server()
    if server.pid is not None:
        cpu += _process_cpu_seconds(server.pid)
    return cpu, server.starts


class Clips(torch.utils.data.Dataset):
    """One random clip per item, read by ``method``, stamped with the reading process's work so far."""

    def __init__(self, path: str, starts: np.ndarray, method: str):
        self.path, self.starts, self.method = path, starts, method

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict:
        indices = np.arange(self.starts[index], self.starts[index] + CLIP)
        clip = torch.from_numpy(METHODS[self.method](self.path, indices))
        cpu, starts = work_so_far()
        return {
            "clip": clip,
            "pid": os.getpid(),
            "time": time.perf_counter(),
            "cpu": cpu,
            "decord_starts": starts,
        }


def run_loader(path: str, starts: np.ndarray, method: str, workers: int) -> dict:
    """Read ``starts`` with ``workers`` DataLoader workers (fresh processes).

    Each worker is measured from its first clip to its last (seconds, CPU-seconds, clips in
    between), as in an epoch of real length, where starting the workers (and vidio's decord
    processes) is a negligible share; the throughput is the sum of the workers' rates. The
    seconds to the first batch are returned apart.
    """
    loader = torch.utils.data.DataLoader(Clips(path, starts, method), batch_size=4, num_workers=workers)
    per_worker: dict[int, dict] = {}
    started = time.perf_counter()
    first = None
    for batch in loader:
        assert batch["clip"].shape[1:] == (CLIP, *SIZE, 3)
        first = first or time.perf_counter()
        for pid, stamp, cpu, decord_starts in zip(
            batch["pid"].tolist(),
            batch["time"].tolist(),
            batch["cpu"].tolist(),
            batch["decord_starts"].tolist(),
        ):
            seen = per_worker.setdefault(pid, {"time": stamp, "cpu": cpu, "clips": -1, "decord_starts": 0})
            seen["clips"] += 1
            seen["decord_starts"] = max(seen["decord_starts"], decord_starts)
            seen["seconds"], seen["cpu_seconds"] = stamp - seen["time"], cpu - seen["cpu"]
    return {
        "clips": sum(w["clips"] for w in per_worker.values()),
        "clips_per_s": sum(w["clips"] / w["seconds"] for w in per_worker.values() if w["clips"]),
        "cpu_seconds": sum(w["cpu_seconds"] for w in per_worker.values()),
        "startup": first - started,
        "all_clips": len(starts),
        "restarts": sum(max(w["decord_starts"] - 1, 0) for w in per_worker.values()),
    }


def tree_rss_mb() -> float:
    """Resident memory of this process and its children (the decord process), in MiB."""
    page = os.sysconf("SC_PAGE_SIZE")
    me = os.getpid()
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if int(entry) == me or parent == me:
                with open(f"/proc/{entry}/statm") as statm:
                    total += int(statm.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20


def memory_run(path: str, num_frames: int, clips: int, method: str) -> dict:
    rng = np.random.default_rng(1)
    samples = []
    warmup = min(100, clips // 5)
    starts_before = _decord._current_server().starts
    for k in range(clips):
        start = int(rng.integers(0, num_frames - CLIP))
        METHODS[method](path, np.arange(start, start + CLIP))
        if k + 1 == warmup or (k + 1) % max(1, clips // 10) == 0:
            samples.append((k + 1, round(tree_rss_mb(), 1)))
    after_warmup = samples[0][1]
    record = {
        "method": method,
        "clips": clips,
        "rss_mb": samples,
        "growth_after_warmup_mb": round(samples[-1][1] - after_warmup, 1),
        "peak_growth_mb": round(max(s[1] for s in samples) - after_warmup, 1),
    }
    if method == VIDIO_DECORD:
        record["decord_restarts"] = max(_decord._current_server().starts - max(starts_before, 1), 0)
    return record


def describe(path: Path) -> dict:
    info = vidio.probe(path)
    return {
        "path": str(path),
        "frames": info.num_frames,
        "size": [info.width, info.height],
        "fps": info.fps,
        # as probed from the file, not as asked of the encoder
        "keyframe_interval_frames": int(np.diff(info.keyframes).max()) if len(info.keyframes) > 1 else None,
        "megabytes": round(path.stat().st_size / 2**20, 1),
    }


def summarise(runs: dict, workers: int) -> list[dict]:
    rows = []
    for (video, method), by_workers in runs.items():
        row = {"video": video, "method": method}
        for count, label in ((1, "1_process"), (workers, "dataloader")):
            total = by_workers[count]
            row[f"clips_per_s_{label}"] = round(total["clips_per_s"] / total["runs"], 2)
            row[f"cpu_s_per_clip_{label}"] = round(total["cpu_seconds"] / total["clips"], 4)
            row[f"seconds_to_first_batch_{label}"] = round(total["startup"] / total["runs"], 2)
        clips = sum(t["all_clips"] for t in by_workers.values())
        restarts = sum(t["restarts"] for t in by_workers.values())
        row["decord_restarts_per_1000_clips"] = (
            round(1000 * restarts / clips, 2) if method == VIDIO_DECORD else None
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the JSON result and the cached videos"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few clips per row: a smoke test, not a measurement"
    )
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    seconds = 4 if args.quick else 20
    per_run, memory_clips, rounds = (8, 60, 1) if args.quick else (48, 2000, 3)
    original = args.out / f"vidio_bench_720p_{seconds}s.mp4"
    prepared = args.out / f"vidio_bench_720p_{seconds}s_prepared_256p_g{PREPARED_KEYFRAME_INTERVAL}.mp4"
    if not original.exists():
        print(f"writing the test video {original} ({seconds} s of 720p H.264) ...", flush=True)
        make_video(original, seconds)
    if not prepared.exists():
        print(f"preparing a training copy {prepared} ...", flush=True)
        prepare_copy(original, prepared)
    videos = {"original": str(original), "prepared": str(prepared)}
    lengths = {name: vidio.probe(path).num_frames for name, path in videos.items()}
    rng = np.random.default_rng(0)

    runs: dict = {}
    for r in range(rounds):
        for name, path in videos.items():
            methods = list(METHODS)
            methods = methods[r % len(methods) :] + methods[: r % len(methods)]
            for method in methods:
                for workers in (1, args.workers):
                    print(f"round {r + 1}/{rounds}, {name}: {method}, {workers} worker(s) ...", flush=True)
                    starts = rng.integers(0, lengths[name] - CLIP, per_run)
                    result = run_loader(path, starts, method, workers)
                    total = runs.setdefault((name, method), {}).setdefault(workers, {"runs": 0})
                    total["runs"] += 1
                    for key, value in result.items():
                        total[key] = total.get(key, 0) + value
    rows = summarise(runs, args.workers)

    def row(video: str, method: str) -> dict:
        return next(r for r in rows if r["video"] == video and r["method"] == method)

    ratios = {}
    for video, prefix in (("original", ""), ("prepared", "prepared_")):
        for label, key in (("1_process", "single_process"), ("dataloader", "dataloader")):
            rate = {m: row(video, m)[f"clips_per_s_{label}"] for m in METHODS}
            fastest = max((m for m in METHODS if m != VIDIO_DECORD), key=rate.get)
            ratios[prefix + key] = {
                "vidio_decord_vs_fastest_other": round(rate[VIDIO_DECORD] / rate[fastest], 2),
                "fastest_other": fastest,
                "vidio_decord_vs_pyav_full_frames": round(
                    rate[VIDIO_DECORD] / rate["PyAV: full frames, resize in torch"], 2
                ),
                "vidio_decord_vs_pyav_scaled": round(
                    rate[VIDIO_DECORD] / rate["PyAV: scale while decoding"], 2
                ),
                "vidio_decord_vs_bare_decord_one_reader": round(
                    rate[VIDIO_DECORD] / rate["bare decord: one reader per process"], 2
                ),
            }

    print("memory: vidio, decord backend ...", flush=True)
    memory = [memory_run(videos["original"], lengths["original"], memory_clips, VIDIO_DECORD)]
    print("memory: bare decord, one reader ...", flush=True)
    memory.append(
        memory_run(
            videos["original"], lengths["original"], memory_clips, "bare decord: one reader per process"
        )
    )
    restarts = [r["decord_restarts_per_1000_clips"] for r in rows if r["method"] == VIDIO_DECORD]

    import decord

    result = {
        "benchmark": "random 16-frame clips at 224x224 from 720p H.264 and from a copy prepared for training",
        "quick": args.quick,
        "videos": {
            "original": describe(original) | {"encoder": "libx264 veryfast crf 23, keyframe every 2 s"},
            "prepared": describe(prepared)
            | {
                "encoder": f"libx264 veryfast crf 23, keyframe every {PREPARED_KEYFRAME_INTERVAL} frames at most"
            },
        },
        "clips_per_run": per_run,
        "rounds": rounds,
        "dataloader_workers": args.workers,
        "rows": rows,
        "ratios": ratios,
        "targets": {
            "original_dataloader_vidio_decord_within_5pct_of_fastest": ratios["dataloader"][
                "vidio_decord_vs_fastest_other"
            ]
            >= 0.95,
            "prepared_dataloader_vidio_decord_within_5pct_of_fastest": ratios["prepared_dataloader"][
                "vidio_decord_vs_fastest_other"
            ]
            >= 0.95,
            "prepared_dataloader_vidio_decord_at_least_3x_pyav_full_frames": ratios["prepared_dataloader"][
                "vidio_decord_vs_pyav_full_frames"
            ]
            >= 3.0,
            "vidio_decord_no_restarts": all(r == 0 for r in restarts) and memory[0]["decord_restarts"] == 0,
            "vidio_memory_growth_under_50mb": memory[0]["growth_after_warmup_mb"] < 50,
        },
        "memory": memory,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "av": av.__version__,
            "decord": decord.__version__,
            "vidio": vidio.__version__,
        },
    }
    out = args.out / "vidio_decode.json"
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(out)

    for video in videos:
        print(
            f"\n{video}: {result['videos'][video]['size'][0]}x{result['videos'][video]['size'][1]}, keyframe "
            f"interval {result['videos'][video]['keyframe_interval_frames']} frames"
            f"\n\n| method | clips/s, 1 process | CPU ms/clip, 1 process | clips/s, {args.workers} workers "
            f"| CPU ms/clip, {args.workers} workers | decord restarts / 1,000 clips |"
            "\n|---|---:|---:|---:|---:|---:|"
        )
        for r in rows:
            if r["video"] != video:
                continue
            restart = (
                "-" if r["decord_restarts_per_1000_clips"] is None else r["decord_restarts_per_1000_clips"]
            )
            print(
                f"| {r['method']} | {r['clips_per_s_1_process']} | {1000 * r['cpu_s_per_clip_1_process']:.1f} "
                f"| {r['clips_per_s_dataloader']} | {1000 * r['cpu_s_per_clip_dataloader']:.1f} | {restart} |"
            )
    print("\nratios:", json.dumps(ratios, indent=1))
    print("targets:", json.dumps(result["targets"], indent=1))
    for entry in memory:
        print(
            f"memory, {entry['method']}: {entry['growth_after_warmup_mb']} MB growth over {entry['clips']} clips"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
