"""``python -m vidio``: list the decoder backends, prepare videos for training."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from ._decoders import decoder_status
from ._prepare import PRESETS, TUNES, PrepareError, PrepareSettings, prepare_folder


def short_side(text: str) -> int | str:
    """``--short-side``: a number of pixels, or ``keep`` (the size is kept)."""
    return text if text == "keep" else int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vidio", description="Video clips for training.")
    sub = parser.add_subparsers(dest="command", required=True)

    backends = sub.add_parser("backends", help="the decoder backends, whether they run here, their versions")
    backends.add_argument("--json", action="store_true", help="print JSON instead of a table")

    prepare = sub.add_parser(
        "prepare",
        help="re-encode a folder of videos into copies that are cheap to read (every frame kept)",
        description="Re-encode every video under SRC as H.264 MP4 under DST (same relative path, "
        ".mp4 suffix): every frame and timestamp kept, smaller, with frequent keyframes. Resumable; "
        "DST/vidio-prepare.json lists every copy with its sizes before and after.",
    )
    prepare.add_argument("src", help="folder of videos (searched recursively)")
    prepare.add_argument("dst", help="folder for the copies (created; must not lie inside SRC)")
    # flags not given stay None and PrepareSettings applies its own defaults, shown here
    defaults = PrepareSettings()
    prepare.add_argument(
        "--short-side",
        type=short_side,
        help=f"pixels of the shorter side, or 'keep' (default {defaults.short_side}; never enlarged)",
    )
    prepare.add_argument(
        "--keyframe-interval",
        type=int,
        help=f"at most this many frames between keyframes (default {defaults.keyframe_interval})",
    )
    prepare.add_argument(
        "--crf", type=int, help=f"x264 quality, 0-51, lower is better (default {defaults.crf})"
    )
    prepare.add_argument("--preset", choices=PRESETS, help=f"x264 speed preset (default {defaults.preset})")
    prepare.add_argument(
        "--tune",
        choices=(*TUNES, "none"),
        help=f"x264 tuning, or 'none' (default {defaults.tune}: cheaper to decode, a slightly larger file)",
    )
    prepare.add_argument("--workers", type=int, help="videos encoded at once (default: one per usable CPU)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _backends(as_json: bool) -> int:
    statuses = decoder_status()
    if as_json:
        print(json.dumps([asdict(s) for s in statuses], indent=1))
        return 0
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        mark = "*" if s.default else " "
        state = "available  " if s.available else "unavailable"
        devices = ",".join(s.devices) if s.devices else "-"
        print(f"{mark} {s.name:<{width}}  {state}  {devices:<8}  {s.library}  [{s.distribution}]")
    print("* the default (vidio.open(path) without backend=)")
    return 0


class _Bar:
    """A progress bar on stderr with the time left: one line redrawn on a terminal, else a line per video."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.redraw = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.first: int | None = None

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = done
        elapsed = time.perf_counter() - self.started
        fresh = done - self.first
        left = (total - done) * elapsed / fresh if fresh else None
        filled = int(30 * done / total) if total else 30
        eta = "--:--" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} videos, {eta} left  {name[-40:]}"
        if self.redraw:
            print(f"\r{line:<110}", end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif name:
            print(line, file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> int:
    try:
        given = {
            name: getattr(args, name)
            for name in ("short_side", "keyframe_interval", "crf", "preset", "tune")
            if getattr(args, name) is not None
        }
        if given.get("short_side") == "keep":
            given["short_side"] = None
        if given.get("tune") == "none":
            given["tune"] = None
        settings = PrepareSettings(**given)
        result = prepare_folder(
            args.src, args.dst, settings, workers=args.workers, progress=_Bar(not args.quiet)
        )
    except (PrepareError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    totals = result.manifest["totals"]
    print(
        f"{len(result.written)} prepared, {len(result.skipped)} already done, {len(result.failed)} failed; "
        f"{totals['videos']} copies take {totals['source_bytes'] / 2**20:.1f} MiB -> "
        f"{totals['output_bytes'] / 2**20:.1f} MiB; manifest: {args.dst}/vidio-prepare.json"
    )
    for name, reason in result.failed.items():
        print(f"failed: {name}: {reason}", file=sys.stderr)
    return 1 if result.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "backends":
        return _backends(args.json)
    return _prepare(args)
