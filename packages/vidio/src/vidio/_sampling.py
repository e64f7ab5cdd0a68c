"""Frame samplers: which frame indices make up a training clip.

Every sampler is a callable ``sampler(num_frames, start=0, stop=None, rng=None)`` that
returns int64 indices: ``(T,)`` for one clip, ``(S, L)`` for ``S`` clips of ``L`` frames.
``[start, stop)`` is the annotated part of the video (a dive, a trial); indices may reach
outside it when a sampler needs more frames than the range holds, but never outside
``[0, num_frames)``. Randomness comes only from ``rng``, a ``numpy.random.Generator`` (or
an int seed), so a sampler is deterministic given a seed and safe in DataLoader workers.
"""

from __future__ import annotations

import math

import numpy as np

_POSITIONS = ("start", "center", "end", "random")


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _span(num_frames: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = num_frames if stop is None else stop
    if num_frames < 1:
        raise ValueError(f"cannot sample from a video with {num_frames} frames")
    if not 0 <= start < stop:
        raise ValueError(f"frame range [{start}, {stop}) is empty or negative")
    if start >= num_frames:
        raise ValueError(f"frame range [{start}, {stop}) starts after the last frame ({num_frames - 1})")
    return start, min(stop, num_frames)


def _place(first: int, offsets: np.ndarray, num_frames: int) -> np.ndarray:
    return np.clip(first + offsets, 0, num_frames - 1).astype(np.int64)


def _first_frame(position: str, lo: int, hi: int, span: int, rng: np.random.Generator | int | None) -> int:
    room = max(hi - lo - span, 0)
    if position == "start":
        return lo
    if position == "end":
        return hi - span
    if position == "center":
        return lo + room // 2
    return lo + int(_generator(rng).integers(0, room + 1))


class UniformSampler:
    """``count`` frames spread evenly over the range, first and last included.

    Index ``k`` is ``floor(start + k * (stop - 1 - start) / (count - 1))``, which is what the
    JIGSAWS reference code computes with ``np.linspace(0, n - 1, 160, dtype=int)``. A range
    shorter than ``count`` repeats frames.

    Args:
        count: number of frames (JIGSAWS: 160).

    Example:
        >>> vidio.UniformSampler(5)(num_frames=100)
        array([ 0, 24, 49, 74, 99])
    """

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.count = count

    def __call__(
        self,
        num_frames: int,
        start: int = 0,
        stop: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        lo, hi = _span(num_frames, start, stop)
        return np.floor(np.linspace(lo, hi - 1, self.count)).astype(np.int64)

    def __repr__(self) -> str:
        return f"UniformSampler(count={self.count})"


class ClipSampler:
    """``length`` frames ``stride`` apart, at the start, centre, end or a random place of the range.

    When the clip is longer than the range it starts at the range start (or ends at its end)
    and its last indices repeat the last frame of the video rather than leave it.

    Args:
        length: frames in the clip.
        stride: step between frames (2 takes every other frame).
        position: ``"start"``, ``"center"``, ``"end"`` or ``"random"`` (uniform over every
            place the clip fits; use it for training).

    Example:
        >>> vidio.ClipSampler(4, stride=2, position="start")(num_frames=100, start=10)
        array([10, 12, 14, 16])
    """

    def __init__(self, length: int, stride: int = 1, position: str = "random"):
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be at least 1, got {length} and {stride}")
        if position not in _POSITIONS:
            raise ValueError(f"position must be one of {_POSITIONS}, got {position!r}")
        self.length, self.stride, self.position = length, stride, position

    def __call__(
        self,
        num_frames: int,
        start: int = 0,
        stop: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        lo, hi = _span(num_frames, start, stop)
        span = (self.length - 1) * self.stride + 1
        first = max(_first_frame(self.position, lo, hi, span, rng), 0)
        return _place(first, np.arange(self.length) * self.stride, num_frames)

    def __repr__(self) -> str:
        return f"ClipSampler(length={self.length}, stride={self.stride}, position={self.position!r})"


class SegmentSampler:
    """A window of ``window`` consecutive frames cut into ``num_segments`` clips of ``length``.

    The window starts at the range start (``anchor="start"``, the MUSDL frame-folder layout)
    or ends at the range end (``anchor="end"``, the MTL-AQA videos: the 103 frames up to the
    end of the dive); it may reach outside the range but not outside the video. Segment
    ``s`` starts at ``min(s * stride, window - length)`` inside the window, with
    ``stride = ceil((window - length) / (num_segments - 1))`` by default, so the MTL-AQA
    setting (103, 10, 16) gives the reference starts 0, 10, ..., 80, 87.

    Args:
        window: frames in the window (MTL-AQA: 103).
        num_segments: clips to cut (MTL-AQA: 10).
        length: frames per clip (MTL-AQA: 16).
        anchor: ``"start"`` or ``"end"``.
        stride: distance between segment starts; computed as above when ``None``.

    Returns (when called):
        int64 indices of shape ``(num_segments, length)``.

    Example:
        >>> vidio.SegmentSampler(103, 10, 16)(num_frames=200)[:, 0]
        array([ 0, 10, 20, 30, 40, 50, 60, 70, 80, 87])
    """

    def __init__(
        self, window: int, num_segments: int, length: int, anchor: str = "start", stride: int | None = None
    ):
        if not 1 <= length <= window:
            raise ValueError(f"segment length {length} must be between 1 and the window ({window})")
        if num_segments < 1:
            raise ValueError(f"num_segments must be at least 1, got {num_segments}")
        if anchor not in ("start", "end"):
            raise ValueError(f"anchor must be 'start' or 'end', got {anchor!r}")
        if stride is None:
            stride = math.ceil((window - length) / (num_segments - 1)) if num_segments > 1 else 0
        self.window, self.num_segments, self.length, self.anchor, self.stride = (
            window,
            num_segments,
            length,
            anchor,
            stride,
        )
        starts = np.minimum(np.arange(num_segments) * stride, window - length)
        self._offsets = starts[:, None] + np.arange(length)[None, :]

    def __call__(
        self,
        num_frames: int,
        start: int = 0,
        stop: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        lo, hi = _span(num_frames, start, stop)
        first = lo if self.anchor == "start" else max(hi - self.window, 0)
        return _place(first, self._offsets, num_frames)

    def __repr__(self) -> str:
        return (
            f"SegmentSampler(window={self.window}, num_segments={self.num_segments}, length={self.length}, "
            f"anchor={self.anchor!r}, stride={self.stride})"
        )


class SlidingWindowSampler:
    """Every clip of ``length`` frames, ``step`` frames apart, covering the whole range.

    The last window is moved back to end exactly at the range end, so no frame is left out.

    Args:
        length: frames per window.
        step: distance between window starts (``length`` gives non-overlapping windows).

    Returns (when called):
        int64 indices of shape ``(num_windows, length)``.

    Example:
        >>> vidio.SlidingWindowSampler(4, step=3)(num_frames=10)[:, 0]
        array([0, 3, 6])
    """

    def __init__(self, length: int, step: int):
        if length < 1 or step < 1:
            raise ValueError(f"length and step must be at least 1, got {length} and {step}")
        self.length, self.step = length, step

    def __call__(
        self,
        num_frames: int,
        start: int = 0,
        stop: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        lo, hi = _span(num_frames, start, stop)
        last = max(hi - self.length, lo)
        starts = np.arange(lo, last + 1, self.step)
        if starts[-1] != last:
            starts = np.append(starts, last)
        return _place(0, starts[:, None] + np.arange(self.length)[None, :], num_frames)

    def __repr__(self) -> str:
        return f"SlidingWindowSampler(length={self.length}, step={self.step})"


class RandomShift:
    """Move another sampler's indices by one random offset in ``[low, high]`` (training jitter).

    All indices move together, then are clipped to the video. MTL-AQA's reference code
    shifts by ``[-3, 3]`` (videos) or ``[0, 6]`` (frame folders).

    Args:
        sampler: the sampler to shift.
        low, high: inclusive bounds of the offset in frames.

    Example:
        >>> shifted = vidio.RandomShift(vidio.ClipSampler(3, position="start"), -2, 2)
        >>> shifted(num_frames=100, start=50, rng=0)
        array([52, 53, 54])
    """

    def __init__(self, sampler, low: int, high: int):
        if low > high:
            raise ValueError(f"low ({low}) must not exceed high ({high})")
        self.sampler, self.low, self.high = sampler, low, high

    def __call__(
        self,
        num_frames: int,
        start: int = 0,
        stop: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        generator = _generator(rng)
        indices = self.sampler(num_frames, start, stop, generator)
        shift = int(generator.integers(self.low, self.high + 1))
        return _place(shift, indices, num_frames)

    def __repr__(self) -> str:
        return f"RandomShift({self.sampler!r}, low={self.low}, high={self.high})"
