"""Random 16-frame clips at 224x224 from 720p H.264: every way to decode them, side by side.

Writes ``<out>/vidio_decode.json`` and prints a Markdown table. The test video is generated
with PyAV on first use and cached in ``<out>`` (1280x720, 30 fps, libx264 veryfast CRF 23,
a keyframe every 2 s as YouTube recommends for uploads, B-frames on: x264's defaults
otherwise). In one process, every clip is read by every method in turn; DataLoader rows run
in interleaved rounds. So a load change on a shared machine hits all methods alike; the
ratios are what to compare across machines.

Usage:
    python packages/vidio/benchmarks/bench_decode.py --out runs/bench [--quick]
"""

from __future__ import annotations

import argparse
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

SIZE = (224, 224)
CLIP = 16


def make_video(path: Path, seconds: int) -> None:
    """Encode a panning textured scene with a moving box and light sensor-like noise."""
    width, height, fps = 1280, 720, 30
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (height // 16 + 1, (width + fps * seconds * 4) // 16 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(tiles, 16, 0), 16, 1).astype(np.uint16)
    texture = (
        (texture + np.roll(texture, 8, 1) + np.roll(texture, 8, 0) + np.roll(texture, (8, 8), (0, 1))) // 4
    ).astype(np.uint8)
    noise = [rng.integers(0, 6, (height, width, 1), dtype=np.uint8) for _ in range(5)]
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(2 * fps)}
        for i in range(fps * seconds):
            image = texture[:height, i * 4 : i * 4 + width] + noise[i % 5]
            top, left = 100 + int(200 * np.sin(i / 15)), (i * 9) % (width - 120)
            image[top : top + 120, left : left + 120] = (255, 64, 32)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
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
    """Bare decord with one reader per process (what a careful user caches)."""
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


METHODS = {
    "PyAV: full frames, resize in torch": pyav_full_frames,
    "PyAV: scale while decoding": pyav_scaled,
    "vidio, pyav backend": vidio_pyav,
    "bare decord: new reader per clip": decord_new_reader,
    "bare decord: one reader per process": decord_one_reader,
    "vidio, decord backend": vidio_decord,
}


class Clips(torch.utils.data.Dataset):
    """One random clip per item, read by ``method``; what a training DataLoader does."""

    def __init__(self, path: str, starts: np.ndarray, method: str):
        self.path, self.starts, self.method = path, starts, method

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> torch.Tensor:
        indices = np.arange(self.starts[index], self.starts[index] + CLIP)
        return torch.from_numpy(METHODS[self.method](self.path, indices))


def time_single(path: str, starts: np.ndarray) -> dict[str, float]:
    """Seconds per method; every clip is read by every method in turn (rotating the order),
    so a change of load on the machine hits all methods alike."""
    spent = dict.fromkeys(METHODS, 0.0)
    names = list(METHODS)
    for k, start in enumerate(starts):
        for method in names[k % len(names) :] + names[: k % len(names)]:
            started = time.perf_counter()
            clip = METHODS[method](path, np.arange(start, start + CLIP))
            spent[method] += time.perf_counter() - started
            assert clip.shape == (CLIP, *SIZE, 3)
    return spent


def time_loader(path: str, starts: np.ndarray, method: str, workers: int) -> tuple[int, float, float]:
    """Clips timed, their seconds, and the seconds until the first batch (worker start-up).

    Throughput is counted from the first batch on, as in an epoch of real length, where
    starting the workers (and vidio's decord processes) is a negligible share.
    """
    loader = torch.utils.data.DataLoader(Clips(path, starts, method), batch_size=4, num_workers=workers)
    started = time.perf_counter()
    clips, first = 0, None
    for batch in loader:
        assert batch.shape[1:] == (CLIP, *SIZE, 3)
        if first is None:
            first = time.perf_counter()
        else:
            clips += len(batch)
    return clips, time.perf_counter() - first, first - started


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
    for k in range(clips):
        start = int(rng.integers(0, num_frames - CLIP))
        METHODS[method](path, np.arange(start, start + CLIP))
        if k + 1 == warmup or (k + 1) % max(1, clips // 10) == 0:
            samples.append((k + 1, round(tree_rss_mb(), 1)))
    after_warmup = samples[0][1]
    return {
        "method": method,
        "clips": clips,
        "rss_mb": samples,
        "growth_after_warmup_mb": round(samples[-1][1] - after_warmup, 1),
        "peak_growth_mb": round(max(s[1] for s in samples) - after_warmup, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the JSON result and the cached video"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few clips per row: a smoke test, not a measurement"
    )
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    seconds = 4 if args.quick else 20
    single, loaded, memory_clips, rounds = (4, 12, 60, 1) if args.quick else (100, 60, 2000, 3)
    video = args.out / f"vidio_bench_720p_{seconds}s.mp4"
    if not video.exists():
        print(f"writing the test video {video} ({seconds} s of 720p H.264) ...", flush=True)
        make_video(video, seconds)
    path = str(video)
    info = vidio.probe(path)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, info.num_frames - CLIP, single + loaded * rounds)

    for method in METHODS:  # open files, start decoder processes, fill caches once for every row
        METHODS[method](path, np.arange(CLIP))

    print(f"{single} clips, each read by every method in turn ...", flush=True)
    seconds_single = time_single(path, starts[:single])
    loader_clips = dict.fromkeys(METHODS, 0)
    seconds_loader = dict.fromkeys(METHODS, 0.0)
    startup = dict.fromkeys(METHODS, 0.0)
    for r in range(rounds):
        chunk = starts[single + r * loaded : single + (r + 1) * loaded]
        for method in METHODS:
            print(f"round {r + 1}/{rounds}: {method} with {args.workers} DataLoader workers ...", flush=True)
            clips, spent, first = time_loader(path, chunk, method, args.workers)
            loader_clips[method] += clips
            seconds_loader[method] += spent
            startup[method] += first / rounds

    rows = [
        {
            "method": method,
            "clips_per_s": round(single / seconds_single[method], 2),
            "clips_per_s_dataloader": round(loader_clips[method] / seconds_loader[method], 2),
            "seconds_to_first_batch": round(startup[method], 2),
        }
        for method in METHODS
    ]
    rate = {row["method"]: row for row in rows}

    def ratio(a: str, b: str, key: str) -> float:
        return round(rate[a][key] / rate[b][key], 2)

    ratios = {}
    for key, label in (("clips_per_s", "single_process"), ("clips_per_s_dataloader", "dataloader")):
        ratios[label] = {
            "vidio_decord_vs_pyav_full_frames": ratio(
                "vidio, decord backend", "PyAV: full frames, resize in torch", key
            ),
            "vidio_decord_vs_pyav_scaled": ratio("vidio, decord backend", "PyAV: scale while decoding", key),
            "vidio_decord_vs_vidio_pyav": ratio("vidio, decord backend", "vidio, pyav backend", key),
            "vidio_decord_vs_bare_decord_new_reader": ratio(
                "vidio, decord backend", "bare decord: new reader per clip", key
            ),
            "vidio_decord_vs_bare_decord_one_reader": ratio(
                "vidio, decord backend", "bare decord: one reader per process", key
            ),
        }
    print("memory: vidio, decord backend ...", flush=True)
    memory = [memory_run(path, info.num_frames, memory_clips, "vidio, decord backend")]
    print("memory: bare decord, one reader ...", flush=True)
    memory.append(memory_run(path, info.num_frames, memory_clips, "bare decord: one reader per process"))

    import decord

    result = {
        "benchmark": "random 16-frame clips at 224x224 from 720p H.264",
        "quick": args.quick,
        "video": {
            "path": path,
            "seconds": seconds,
            "frames": info.num_frames,
            "size": [info.width, info.height],
            "fps": info.fps,
            # as probed from the file, not as asked of the encoder
            "keyframe_interval_frames": int(np.diff(info.keyframes).max())
            if len(info.keyframes) > 1
            else None,
            "encoder": "libx264 veryfast crf 23",
        },
        "clips_per_row": single,
        "clips_per_row_dataloader": loader_clips["vidio, decord backend"],
        "dataloader_workers": args.workers,
        "rows": rows,
        "ratios": ratios,
        "targets": {
            f"{label}_{name}": value
            for label, r in ratios.items()
            for name, value in (
                ("vidio_decord_at_least_3x_pyav_full_frames", r["vidio_decord_vs_pyav_full_frames"] >= 3.0),
                ("vidio_decord_at_least_3x_pyav_scaled", r["vidio_decord_vs_pyav_scaled"] >= 3.0),
                (
                    "vidio_decord_within_10pct_of_bare_decord_new_reader",
                    r["vidio_decord_vs_bare_decord_new_reader"] >= 0.9,
                ),
                (
                    "vidio_decord_within_10pct_of_bare_decord_one_reader",
                    r["vidio_decord_vs_bare_decord_one_reader"] >= 0.9,
                ),
            )
        }
        | {"vidio_memory_growth_under_50mb": memory[0]["growth_after_warmup_mb"] < 50},
        "memory": memory,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "av": av.__version__,
            "decord": decord.__version__,
            "vidio": vidio.__version__,
        },
    }
    out = args.out / "vidio_decode.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"\n| method | clips/s, 1 process | clips/s, {args.workers} DataLoader workers | s to first batch |"
        "\n|---|---:|---:|---:|"
    )
    for row in rows:
        print(
            f"| {row['method']} | {row['clips_per_s']} | {row['clips_per_s_dataloader']} "
            f"| {row['seconds_to_first_batch']} |"
        )
    print("\nratios:", json.dumps(ratios, indent=1))
    for entry in memory:
        print(
            f"memory, {entry['method']}: {entry['growth_after_warmup_mb']} MB growth over {entry['clips']} clips"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
