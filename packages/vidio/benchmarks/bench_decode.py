"""Random 16-frame clips at 224x224: every backend, from an original and a prepared copy.

Two videos, written on first use and cached in ``<out>``:

- the original: 20 s of 1280x720 H.264 at 30 fps (libx264 veryfast CRF 23, a keyframe every
  2 s as YouTube recommends for uploads, B-frames on: x264's defaults otherwise);
- a copy prepared for training by ``python -m vidio prepare`` (vidio's own code, default
  settings): 456x256 (the 256-pixel short side MTL-AQA's reference decodes at) with a keyframe
  at least every 16 frames (one clip). Its disk size is compared with the original's and with
  the same frames extracted to JPEG files (at both sizes).

Every method reads clips in processes of its own: one DataLoader worker ("1 process"), and
``--workers`` DataLoader workers. Runs are interleaved in rounds (both videos, every method in
a rotating order, both worker counts), so a change of load on a shared machine hits all
methods alike; the load average is recorded before every run. Per run: clips per second and
CPU-seconds per clip of the decoding processes (all their threads, plus their child
processes: vidio's decord process), both counted from each process's first clip on, as in an
epoch of real length (start-up is reported apart); frames decoded per clip where the method
can count them, against the least a reader starting from keyframes must decode; and for
vidio's decord backend, how often its decord process was replaced, per 1,000 clips. Last,
memory over thousands of clips read in this process. Writes ``<out>/vidio_decode.json`` and
prints Markdown tables. Methods whose library is missing (torchcodec without FFmpeg, say)
are left out and listed.

Usage:
    python packages/vidio/benchmarks/bench_decode.py --out runs/bench [--quick] [--workers 2]
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
from vidio import (
    _decord,  # the decord process of the calling process: its CPU time and restarts
    _prepare,  # python -m vidio prepare, to make the prepared copy
)

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


def prepare_copy(source: Path, folder: Path) -> tuple[Path, dict]:
    """``python -m vidio prepare`` of ``source`` into ``folder``; the copy and its manifest entry."""
    staging = folder / "original"
    staging.mkdir(parents=True, exist_ok=True)
    link = staging / source.name
    if not link.exists():
        os.link(source, link)
    settings = _prepare.PrepareSettings(
        short_side=min(PREPARED_SIZE), keyframe_interval=PREPARED_KEYFRAME_INTERVAL
    )
    result = _prepare.prepare_folder(staging, folder / "prepared", settings, workers=1)
    if result.failed:
        raise SystemExit(f"preparing the copy failed: {result.failed}")
    return folder / "prepared" / source.name, result.manifest["files"][source.name]


def jpeg_sizes(source: Path, sizes: dict[str, tuple[int, int] | None], out: Path) -> dict:
    """Bytes (and bytes allocated on disk) of every frame of ``source`` as a JPEG file (quality 95),
    as the reference AQA code extracts them, at each of ``sizes`` (``(height, width)``, None: stored)."""
    from torchvision.io import encode_jpeg

    results = {}
    with vidio.open(source) as video:
        for label, size in sizes.items():
            folder = out / f"jpeg_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            total = allocated = 0
            for start in range(0, len(video), 64):
                frames = video.get(range(start, min(start + 64, len(video))), size=size)
                for k, frame in enumerate(frames):
                    data = encode_jpeg(
                        torch.from_numpy(frame).permute(2, 0, 1).contiguous(), quality=95
                    ).numpy()
                    file = folder / f"{start + k + 1:06d}.jpg"
                    file.write_bytes(data.tobytes())
                    total += len(data)
                    allocated += file.stat().st_blocks * 512
            results[label] = {"frames": len(video), "bytes": total, "bytes_on_disk": allocated}
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
    return results


def _pyav_wanted_frames(path: str, indices: np.ndarray, convert) -> tuple[np.ndarray, int]:
    """Seek to the keyframe before ``indices[0]``, decode forward, ``convert`` only the wanted
    frames; also return how many frames came out of the decoder."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1 / (stream.average_rate * stream.time_base)
        container.seek(int(indices[0] * step), stream=stream, backward=True)
        wanted, frames, decoded = set(indices.tolist()), {}, 0
        for frame in container.decode(stream):
            decoded += 1
            index = round(frame.pts / step)
            if index in wanted:
                frames[index] = convert(frame)
            if index >= indices[-1]:
                break
    return np.stack([frames[i] for i in indices]), decoded


def pyav_full_frames(path: str, indices: np.ndarray) -> tuple[np.ndarray, int]:
    """PyAV the common way: seek, decode, full-size RGB for each wanted frame, resize in torch."""
    full, decoded = _pyav_wanted_frames(path, indices, lambda frame: frame.to_ndarray(format="rgb24"))
    clip = torch.from_numpy(full).permute(0, 3, 1, 2).float()
    resized = F.interpolate(clip, size=SIZE, mode="bilinear", antialias=True).round().byte()
    return resized.permute(0, 2, 3, 1).numpy(), decoded


def pyav_scaled(path: str, indices: np.ndarray) -> tuple[np.ndarray, int]:
    """PyAV done carefully: seek, decode, scale only the wanted frames with one swscale context."""
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()
    return _pyav_wanted_frames(
        path,
        indices,
        lambda frame: scaler.reformat(frame, width=SIZE[1], height=SIZE[0], format="rgb24").to_ndarray(),
    )


def decord_new_reader(path: str, indices: np.ndarray) -> tuple[np.ndarray, None]:
    import decord

    return decord.VideoReader(path, width=SIZE[1], height=SIZE[0]).get_batch(indices.tolist()).asnumpy(), None


_decord_readers: dict = {}


def decord_one_reader(path: str, indices: np.ndarray) -> tuple[np.ndarray, None]:
    """Bare decord with one reader per file and process (what a careful user caches)."""
    import decord

    key = (os.getpid(), path)
    if key not in _decord_readers:
        _decord_readers[key] = decord.VideoReader(path, width=SIZE[1], height=SIZE[0])
    return _decord_readers[key].get_batch(indices.tolist()).asnumpy(), None


_torchcodec_decoders: dict = {}


def torchcodec_one_decoder(path: str, indices: np.ndarray) -> tuple[np.ndarray, None]:
    """Bare torchcodec with one decoder per file and process, scaling while decoding, as its docs show."""
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    key = (os.getpid(), path)
    if key not in _torchcodec_decoders:
        _torchcodec_decoders[key] = VideoDecoder(
            path, dimension_order="NHWC", num_ffmpeg_threads=0, transforms=[Resize(SIZE)]
        )
    return _torchcodec_decoders[key].get_frames_at(indices.tolist()).data.numpy(), None


def _vidio(backend: str):
    def read(path: str, indices: np.ndarray) -> tuple[np.ndarray, int | None]:
        with vidio.open(path, backend=backend) as video:
            before = video.frames_decoded
            frames = video.get(indices, size=SIZE)
            return frames, None if before is None else video.frames_decoded - before

    return read


VIDIO_DEFAULT = "vidio, pyav backend (the default)"
VIDIO_DECORD = "vidio, decord backend"
COMMON_WAY = "PyAV: full frames, resize in torch"
METHODS = {
    COMMON_WAY: pyav_full_frames,
    "PyAV: scale while decoding": pyav_scaled,
    VIDIO_DEFAULT: _vidio("pyav"),
    "bare decord: new reader per clip": decord_new_reader,
    "bare decord: one reader per process": decord_one_reader,
    VIDIO_DECORD: _vidio("decord"),
    "bare torchcodec: one decoder per process": torchcodec_one_decoder,
    "vidio, torchcodec backend": _vidio("torchcodec"),
}
NEEDS = {
    "bare decord: new reader per clip": "decord",
    "bare decord: one reader per process": "decord",
    VIDIO_DECORD: "decord",
    "bare torchcodec: one decoder per process": "torchcodec",
    "vidio, torchcodec backend": "torchcodec",
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
        frames, decoded = METHODS[self.method](self.path, indices)
        cpu, starts = work_so_far()
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(frames)),
            "pid": os.getpid(),
            "time": time.perf_counter(),
            "cpu": cpu,
            "decord_starts": starts,
            "decoded": -1 if decoded is None else decoded,
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
    load = os.getloadavg()[0]
    started = time.perf_counter()
    first = None
    decoded = []
    for batch in loader:
        assert batch["clip"].shape[1:] == (CLIP, *SIZE, 3)
        decoded += batch["decoded"].tolist()
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
        "load": load,
        "decoded": sum(decoded) if min(decoded) >= 0 else None,
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
    load = os.getloadavg()[0]
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
        "load_average_before": round(load, 2),
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


def summarise(runs: dict, workers: int, minimum: dict[str, float]) -> list[dict]:
    rows = []
    for (video, method), by_workers in runs.items():
        row = {"video": video, "method": method}
        for count, label in ((1, "1_process"), (workers, "dataloader")):
            total = by_workers[count]
            row[f"clips_per_s_{label}"] = round(total["clips_per_s"] / total["runs"], 2)
            row[f"cpu_s_per_clip_{label}"] = round(total["cpu_seconds"] / total["clips"], 4)
            row[f"seconds_to_first_batch_{label}"] = round(total["startup"] / total["runs"], 2)
            row[f"load_average_{label}"] = round(total["load"] / total["runs"], 2)
        clips = sum(t["all_clips"] for t in by_workers.values())
        restarts = sum(t["restarts"] for t in by_workers.values())
        counted = [t["decoded"] for t in by_workers.values()]
        row["frames_decoded_per_clip"] = round(sum(counted) / clips, 2) if None not in counted else None
        row["frames_from_keyframes_per_clip"] = minimum[video]
        row["decord_restarts_per_1000_clips"] = (
            round(1000 * restarts / clips, 2) if method == VIDIO_DECORD else None
        )
        rows.append(row)
    return rows


def available_methods() -> tuple[dict, dict[str, str]]:
    """The methods whose library runs here, and why the others were left out."""
    status = {s.name: s for s in vidio.decoder_status()}
    left_out = {m: status[n].library for m, n in NEEDS.items() if not status[n].available}
    return {m: f for m, f in METHODS.items() if m not in left_out}, left_out


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the JSON result and the cached videos"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few clips per row: a smoke test, not a measurement"
    )
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--clips", type=int, default=None, help="clips per run (default 48; --quick: 8)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of runs (default 3; --quick: 1)")
    parser.add_argument(
        "--memory-clips", type=int, default=None, help="clips of the memory runs (default 2000; --quick: 60)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    methods, left_out = available_methods()

    seconds = 4 if args.quick else 20
    per_run, memory_clips, rounds = (8, 60, 1) if args.quick else (48, 2000, 3)
    per_run = args.clips if args.clips is not None else per_run
    rounds = args.rounds if args.rounds is not None else rounds
    memory_clips = args.memory_clips if args.memory_clips is not None else memory_clips
    original = args.out / f"vidio_bench_720p_{seconds}s.mp4"
    if not original.exists():
        print(f"writing the test video {original} ({seconds} s of 720p H.264) ...", flush=True)
        make_video(original, seconds)
    print("preparing a training copy with python -m vidio prepare ...", flush=True)
    prepared, prepared_entry = prepare_copy(original, args.out / f"vidio_bench_{seconds}s")
    print("extracting JPEG frames to measure their size ...", flush=True)
    jpeg = jpeg_sizes(original, {"original_size": None, "prepared_size": PREPARED_SIZE}, args.out)
    videos = {"original": str(original), "prepared": str(prepared)}
    infos = {name: vidio.probe(path) for name, path in videos.items()}
    lengths = {name: info.num_frames for name, info in infos.items()}
    # the least a reader that starts from the keyframe before each clip decodes, over all clip starts
    minimum = {
        name: round(
            float(
                np.mean([info.frames_to_decode(range(s, s + CLIP)) for s in range(info.num_frames - CLIP)])
            ),
            2,
        )
        for name, info in infos.items()
    }
    rng = np.random.default_rng(0)

    runs: dict = {}
    for r in range(rounds):
        for name, path in videos.items():
            order = list(methods)
            order = order[r % len(order) :] + order[: r % len(order)]
            for method in order:
                for workers in (1, args.workers):
                    print(
                        f"round {r + 1}/{rounds}, {name}: {method}, {workers} worker(s), "
                        f"load {os.getloadavg()[0]:.1f} ...",
                        flush=True,
                    )
                    starts = rng.integers(0, lengths[name] - CLIP, per_run)
                    result = run_loader(path, starts, method, workers)
                    total = runs.setdefault((name, method), {}).setdefault(workers, {"runs": 0})
                    total["runs"] += 1
                    for key, value in result.items():
                        if key == "decoded":
                            total[key] = (
                                None
                                if value is None or total.get(key, 0) is None
                                else total.get(key, 0) + value
                            )
                        else:
                            total[key] = total.get(key, 0) + value
    rows = summarise(runs, args.workers, minimum)

    def row(video: str, method: str) -> dict:
        return next(r for r in rows if r["video"] == video and r["method"] == method)

    ratios = {}
    for video in videos:
        for label in ("1_process", "dataloader"):
            rate = {m: row(video, m)[f"clips_per_s_{label}"] for m in methods}
            cpu = {m: row(video, m)[f"cpu_s_per_clip_{label}"] for m in methods}
            fastest = max((m for m in methods if m != VIDIO_DEFAULT), key=rate.get)
            leanest = min((m for m in methods if m != VIDIO_DEFAULT), key=cpu.get)
            ratios[f"{video}_{label}"] = {
                "vidio_vs_fastest_other": ratio(rate[VIDIO_DEFAULT], rate[fastest]),
                "fastest_other": fastest,
                "cpu_per_clip_leanest_other_vs_vidio": ratio(cpu[leanest], cpu[VIDIO_DEFAULT]),
                "leanest_other": leanest,
                "vidio_vs_common_way_on_the_original": ratio(
                    rate[VIDIO_DEFAULT], row("original", COMMON_WAY)[f"clips_per_s_{label}"]
                ),
                "cpu_per_clip_common_way_on_the_original_vs_vidio": ratio(
                    row("original", COMMON_WAY)[f"cpu_s_per_clip_{label}"], cpu[VIDIO_DEFAULT]
                ),
            }

    memory = []
    for method in (VIDIO_DEFAULT, VIDIO_DECORD):
        if method in methods:
            print(f"memory: {method} ...", flush=True)
            memory.append(memory_run(videos["original"], lengths["original"], memory_clips, method))
    restarts = [r["decord_restarts_per_1000_clips"] for r in rows if r["method"] == VIDIO_DECORD]

    sizes = {
        "original_bytes": prepared_entry["source_bytes"],
        "prepared_bytes": prepared_entry["output_bytes"],
        "jpeg_frames": jpeg,
        "prepared_vs_original": ratio(prepared_entry["output_bytes"], prepared_entry["source_bytes"]),
        "prepared_vs_jpeg_at_prepared_size": ratio(
            prepared_entry["output_bytes"], jpeg["prepared_size"]["bytes_on_disk"]
        ),
        "prepared_vs_jpeg_at_original_size": ratio(
            prepared_entry["output_bytes"], jpeg["original_size"]["bytes_on_disk"]
        ),
    }
    targets = {
        "original_1_process_vidio_within_5pct_of_fastest": ratios["original_1_process"][
            "vidio_vs_fastest_other"
        ]
        >= 0.95,
        "original_dataloader_vidio_within_5pct_of_fastest": ratios["original_dataloader"][
            "vidio_vs_fastest_other"
        ]
        >= 0.95,
        "prepared_1_process_vidio_at_least_10x_common_way_on_original": ratios["prepared_1_process"][
            "vidio_vs_common_way_on_the_original"
        ]
        >= 10,
        "prepared_dataloader_vidio_at_least_10x_common_way_on_original": ratios["prepared_dataloader"][
            "vidio_vs_common_way_on_the_original"
        ]
        >= 10,
        "vidio_decord_no_restarts": all(r == 0 for r in restarts)
        and all(m.get("decord_restarts", 0) == 0 for m in memory),
        "vidio_memory_growth_under_50mb": all(m["growth_after_warmup_mb"] < 50 for m in memory),
    }
    result = {
        "benchmark": "random 16-frame clips at 224x224 from 720p H.264 and from a copy prepared for training",
        "quick": args.quick,
        "videos": {
            "original": describe(original) | {"encoder": "libx264 veryfast crf 23, keyframe every 2 s"},
            "prepared": describe(prepared)
            | {"encoder": "python -m vidio prepare", "prepare": prepared_entry},
        },
        "frames_from_keyframes_per_clip": minimum,
        "disk": sizes,
        "clips_per_run": per_run,
        "rounds": rounds,
        "dataloader_workers": args.workers,
        "left_out": left_out,
        "rows": rows,
        "ratios": ratios,
        "targets": targets,
        "memory": memory,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "vidio": vidio.__version__,
            "decoders": {s.name: s.library for s in vidio.decoder_status()},
        },
    }
    out = args.out / "vidio_decode.json"
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(out)

    for video in videos:
        size = result["videos"][video]["size"]
        print(
            f"\n{video}: {size[0]}x{size[1]}, keyframe interval {result['videos'][video]['keyframe_interval_frames']} "
            f"frames, {minimum[video]} frames from the keyframe before a clip to its end, on average"
            f"\n\n| method | clips/s, 1 process | CPU ms/clip | clips/s, {args.workers} workers "
            "| CPU ms/clip | frames decoded/clip | load | decord restarts / 1,000 clips |"
            "\n|---|---:|---:|---:|---:|---:|---:|---:|"
        )
        for r in rows:
            if r["video"] != video:
                continue
            restart = (
                "-" if r["decord_restarts_per_1000_clips"] is None else r["decord_restarts_per_1000_clips"]
            )
            decoded = "-" if r["frames_decoded_per_clip"] is None else r["frames_decoded_per_clip"]
            print(
                f"| {r['method']} | {r['clips_per_s_1_process']} | {1000 * r['cpu_s_per_clip_1_process']:.1f} "
                f"| {r['clips_per_s_dataloader']} | {1000 * r['cpu_s_per_clip_dataloader']:.1f} | {decoded} "
                f"| {r['load_average_1_process']:.1f} / {r['load_average_dataloader']:.1f} | {restart} |"
            )
    print("\ndisk:", json.dumps(sizes, indent=1))
    print("ratios:", json.dumps(ratios, indent=1))
    print("targets:", json.dumps(targets, indent=1))
    for name, why in left_out.items():
        print(f"left out: {name}: {why}")
    for entry in memory:
        print(
            f"memory, {entry['method']}: {entry['growth_after_warmup_mb']} MB growth over {entry['clips']} clips"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
