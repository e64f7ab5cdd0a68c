"""A run's trained model in one safetensors file, for inference, streamed stage by stage.

``python -m splitnet export RUN --out weights.safetensors`` writes the parameters and
buffers of the trained model (its state dict, not the auxiliary nets), under the model's
own names, so the file loads into the model the run trained::

    model = splitnet.create_backbone("vit_large_patch16_224", img_size=32, patch_size=4)
    model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))

A stage-parallel run is read shard by shard (each checked against the sha256 its index
recorded), memory-mapped: a first pass reads every tensor's dtype and shape to write the
header, a second copies each stage's tensors in. No more than one stage is mapped at a
time, so a model that no single process could hold is exported by one. The file is
written to a temporary name and renamed, then opened with safetensors to check it.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import torch

from localkit_runs import atomic_write

from ._build import create_model
from ._config import TrainConfig
from ._errors import CheckpointError, MetaBuildError
from ._metabuild import on_meta
from ._shards import read_index, shard_problem

logger = logging.getLogger(__name__)

# the safetensors format's dtype names
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _safetensors():
    try:
        import safetensors
    except ImportError as exc:
        raise ImportError(
            "exporting to safetensors needs the safetensors package: pip install 'localkit-splitnet[export]'"
        ) from exc
    return safetensors


def _sources(folder: Path) -> list[tuple[Path, int | None]]:
    """The checkpoint files of a run, in stage order, and the stage each holds (``None``: all)."""
    index = read_index(folder)
    if index is None:
        whole = folder / "checkpoint.pt"
        if not whole.is_file():
            raise FileNotFoundError(
                f"{folder} has no checkpoint (checkpoint.pt or checkpoint.json): nothing to export"
            )
        return [(whole, None)]
    sources = []
    for stage in range(index.stages):
        problem = shard_problem(folder, index, stage)
        if problem is not None:
            raise CheckpointError(f"cannot export {folder}: {problem}. Restore it from a copy.")
        sources.append((folder / index.shard(stage)["file"], stage))
    return sources


def _model_names(config: TrainConfig, info: dict) -> list[str]:
    """The names of the trained model's state dict, in order, from a model built on the meta device."""
    for key in ("input_shape", "num_classes", "task"):
        if key not in info:
            raise CheckpointError(
                f"config.json of {config.out} lacks {key!r}: it was written by an older splitnet. Load the run "
                "with splitnet.load_run and save its weights yourself."
            )
    example = torch.empty((2, *info["input_shape"]), device="meta")
    try:
        model = on_meta(lambda: create_model(config, example, info["num_classes"], info["task"])[0])
    except MetaBuildError as exc:
        logger.warning(
            "%s cannot be built on the meta device (%s); building it whole to learn its names",
            config.model,
            exc,
        )
        model = create_model(
            config, torch.empty((2, *info["input_shape"])), info["num_classes"], info["task"]
        )[0]
    return list(model.state_dict())


def _stage_tensors(path: Path, stage: int | None) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's tensors in one checkpoint file, memory-mapped, named as in the model."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    prefix = "stages."
    for key, tensor in state["model"].items():
        if not key.startswith(prefix):
            continue  # an auxiliary net
        index, _, name = key[len(prefix) :].partition(".")
        if stage is None or int(index) == stage:
            yield name, tensor


def export_run(folder: str | Path, dest: str | Path) -> dict:
    """Write the trained model of run ``folder`` to the safetensors file ``dest``.

    Args:
        folder: a run folder (``--out`` of ``python -m splitnet train``), sharded or not.
        dest: the file to write.

    Returns:
        ``{"file", "tensors", "bytes", "stages"}``.

    Raises:
        ImportError: safetensors is not installed (install ``localkit-splitnet[export]``).
        FileNotFoundError: the folder has no config.json or no checkpoint.
        CheckpointError: a missing or corrupt shard (named), or checkpoints that lack some
            of the model's tensors.

    Example:
        >>> splitnet._export.export_run("runs/vit-k2", "weights.safetensors")  # doctest: +SKIP
        {'file': 'weights.safetensors', 'tensors': 296, 'bytes': 1213029248, 'stages': 2}
    """
    safetensors = _safetensors()
    folder, dest = Path(folder), Path(dest)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a splitnet run: {folder / 'config.json'} is missing. Pass the --out folder of "
            "`python -m splitnet train`."
        )
    info = json.loads((folder / "config.json").read_text())
    config = TrainConfig(**{**info["config"], "resume": True, "out": str(folder)})
    sources = _sources(folder)
    wanted = _model_names(config, info)
    wanted_set = set(wanted)
    header, layout, offset = {}, [], 0
    for path, stage in sources:  # first pass: dtypes and shapes only
        names = []
        for name, tensor in _stage_tensors(path, stage):
            if name not in wanted_set or name in header:
                continue  # not part of the model's state, or shared with an earlier stage
            if tensor.dtype not in _DTYPES:
                raise CheckpointError(f"{name} has dtype {tensor.dtype}, which safetensors does not store")
            size = tensor.numel() * tensor.element_size()
            header[name] = {
                "dtype": _DTYPES[tensor.dtype],
                "shape": list(tensor.shape),
                "data_offsets": [offset, offset + size],
            }
            offset += size
            names.append(name)
        layout.append((path, stage, names))
    missing = [name for name in wanted if name not in header]
    if missing:
        raise CheckpointError(
            f"the checkpoint of {folder} lacks {len(missing)} tensors of the model: {', '.join(missing[:5])}"
        )
    header["__metadata__"] = {"format": "pt", "model": config.model, "splitnet_run": str(folder)}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned

    def write(f) -> None:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for path, stage, names in layout:  # second pass: one stage's tensors at a time
            chosen = set(names)
            for name, tensor in _stage_tensors(path, stage):
                if name in chosen:
                    chosen.discard(name)
                    f.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)

    atomic_write(dest, write)
    with safetensors.safe_open(str(dest), framework="pt") as check:
        if set(check.keys()) != wanted_set:
            raise CheckpointError(f"{dest} does not read back with the model's {len(wanted)} tensors")
    return {"file": str(dest), "tensors": len(wanted), "bytes": dest.stat().st_size, "stages": len(sources)}
