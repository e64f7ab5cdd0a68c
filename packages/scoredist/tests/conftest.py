"""Shared fixtures: the real AQA annotation pickles (read safely) and fake plugin distributions."""

from __future__ import annotations

import io
import pickle
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch

from scoredist._plugins import BACKBONES, DATASETS
from scoredist._rules import RULES

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests' tensors are tiny; on a small shared CPU, intra-op threads only add
    # synchronisation cost (measured: 400x slower per Linear call under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The annotation pickles hold dicts, lists, tuples, floats and numpy arrays; nothing else
# may be constructed while reading them.
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an annotation pickle")
        return super().find_class(module, name)


def load_pickle(path: Path):
    """Read an annotation pickle allowing only builtins and numpy array constructors."""
    return RestrictedUnpickler(io.BytesIO(Path(path).read_bytes())).load()


@pytest.fixture(scope="session")
def restricted_load():
    """The restricted pickle reader, for tests of the reader itself."""
    return load_pickle


@pytest.fixture(scope="session")
def mtl_aqa():
    """``(annotations, train_keys, test_keys)`` of the real MTL-AQA files."""
    return (
        load_pickle(DATA / "mtl_aqa" / "augmented_final_annotations_dict.pkl"),
        load_pickle(DATA / "mtl_aqa" / "train_split_0.pkl"),
        load_pickle(DATA / "mtl_aqa" / "test_split_0.pkl"),
    )


@pytest.fixture(scope="session")
def jigsaws():
    """``(labels, splits)`` of the real JIGSAWS files."""
    return load_pickle(DATA / "jigsaws" / "label.pkl"), load_pickle(DATA / "jigsaws" / "splits.pkl")


@pytest.fixture
def fake_dist(tmp_path, monkeypatch) -> Callable[..., Path]:
    """Install a fake distribution (dist-info + modules) on ``sys.path`` for one test.

    ``fake_dist("acme-rules", {"scoredist.rules": {"name": "mod:attr"}}, {"mod": "source"})``
    """

    installed: list[str] = []

    def install(name: str, entry_points: Mapping[str, Mapping[str, str]], modules: Mapping[str, str]) -> Path:
        site = tmp_path / f"site-{name}"
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {value}" for key, value in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            installed.append(module)
        monkeypatch.syspath_prepend(str(site))
        for registry in (RULES, BACKBONES, DATASETS):
            registry.refresh()
        return site

    yield install
    monkeypatch.undo()
    for module in installed:
        sys.modules.pop(module, None)
    for registry in (RULES, BACKBONES, DATASETS):
        registry.refresh()


FAKE_CLIPS = """
import torch
from torch import nn


class Clips(torch.utils.data.Dataset):
    score_range = (0.0, 30.0)
    judge_range = (0.0, 10.0)
    num_judges = 3

    def __init__(self, root, split, frames=8, size=16, fold=None, empty=False, nan_at=None):
        sizes = {"train": 32, "val": 12, "test": 16}
        if split not in sizes:
            raise ValueError(f"no split {split!r}")
        seed = {"train": 0, "val": 1, "test": 2}[split] + 10 * (fold or 0)
        g = torch.Generator().manual_seed(seed)
        n = 0 if empty else sizes[split]
        self.judges = torch.randint(0, 21, (n, 3), generator=g) * 0.5
        self.score = self.judges.sum(dim=1)
        if nan_at is not None:
            self.score[nan_at] = float("nan")
        self.noise = torch.rand(n, 3, frames, size, size, generator=g) * 0.2
        self.split = split

    def __len__(self):
        return len(self.score)

    def __getitem__(self, i):
        # Brightness and a moving edge encode the score, so a tiny 3D CNN can learn it.
        video = self.noise[i].clone() + self.score[i].nan_to_num() / 30.0
        frames = video.shape[1]
        for t in range(frames):
            level = float(self.score[i].nan_to_num()) / 30.0
            video[:, t, :, : int(1 + t * level * (video.shape[-1] - 1) / frames)] += 0.5
        return {"video": video, "score": self.score[i], "judge_scores": self.judges[i], "id": f"{self.split}-{i:03d}"}


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)

    def forward(self, x):
        return self.conv(x).mean(dim=(3, 4))


def wrong_shape(**kwargs):
    return WrongShape()


def not_a_module(**kwargs):
    return "a string"
"""


@pytest.fixture
def fake_clips(fake_dist) -> str:
    """A fake 'vidio.datasets' entry 'fakeclips' and two broken 'splitnet.backbones' entries."""
    fake_dist(
        "fake-clips",
        {
            "vidio.datasets": {"fakeclips": "fake_clips_mod:Clips"},
            "splitnet.backbones": {
                "wrongshape": "fake_clips_mod:wrong_shape",
                "notamodule": "fake_clips_mod:not_a_module",
            },
        },
        {"fake_clips_mod": FAKE_CLIPS},
    )
    return "fakeclips"


# A stand-in for vidio's 'csv' dataset (same manifest columns), reading the demo's clips with
# PyAV, so that the demo is tested where vidio is not installed (`nox -s tests`).
FAKE_CSV = """
import csv
from pathlib import Path

import av
import numpy as np
import torch


class Manifest(torch.utils.data.Dataset):
    score_range = (0.0, 104.5)
    judge_range = (0.0, 10.0)
    num_judges = 7

    def __init__(self, root, split, **kwargs):
        self.root = Path(root)
        with open(self.root / f"{split}.csv", newline="") as handle:
            self.rows = list(csv.DictReader(handle))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        with av.open(str(self.root / row["path"])) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        judges = [float(row[f"judge_{j}"]) for j in range(1, 8)]
        return {
            "video": torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255,
            "score": torch.tensor(float(row["score"])),
            "judge_scores": torch.tensor(judges),
            "difficulty": torch.tensor(float(row["difficulty"])),
            "id": row["id"],
        }


def manifest(root, split, **kwargs):
    return Manifest(root, split, **kwargs)
"""


@pytest.fixture
def csv_dataset(fake_dist) -> str:
    """The 'vidio.datasets' entry 'csv': vidio's own when installed, else a stand-in."""
    DATASETS.refresh()
    if "csv" not in DATASETS:
        fake_dist(
            "fake-vidio-csv",
            {"vidio.datasets": {"csv": "fake_vidio_csv:manifest"}},
            {"fake_vidio_csv": FAKE_CSV},
        )
    return DATASETS.entry("csv").distribution
