"""The information-flow probe: what a trained network's features still say about x and y.

InfoPro's argument (Wang et al., ICLR 2021, Sections 2-3, Figures 2-3) is that greedy local
learning discards information about the input early (``I(h, x)`` falls with depth) while
making the features linearly separable too soon (``I(h, y)`` rises early), and that InfoPro
keeps ``I(h, x)``. The paper estimates both on frozen features; so does :func:`probe`, at
the input and at every block output of a trained run:

* ``I(h, y)``: a linear classifier fitted on the training split's features, scored by its
  accuracy on the held-out split;
* ``I(h, x)``: the reference code's reconstruction decoder (``networks/auxiliary_nets.py``,
  ``Decoder``: bilinear upsampling to the image size, ``conv3x3 -> 12 channels -> BN -> ReLU
  -> conv3x3 -> image channels -> sigmoid``, binary cross-entropy against the image before
  normalisation), fitted on the training split and scored by its held-out error and PSNR.

Depths are processed one after another: the features of one depth (training and held-out
split) are extracted once, both probes are fitted on them, and they are replaced by the
next depth's, computed from them by the next piece of the network, so memory holds at most
two depths' features at a time.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from localkit_registry import accepted_options

from ._datasets import create_dataset
from ._layout import infer_layout, token_grid
from ._localnet import LocalNet
from ._registries import DATASETS
from ._summary import method_label
from ._trace import Chain, trace
from ._train import Run, load_run

logger = logging.getLogger(__name__)

SCHEMA = "splitnet.probe/1"
HIDDEN = 12  # the reference decoder's hidden channels (``12 * widen``, widen = 1)


@dataclass(frozen=True)
class ProbeSettings:
    """How the probes are fitted; the defaults are documented in docs/splitnet.md.

    Both probes train with Adam on the frozen features of the training split, in batches
    of ``batch_size`` drawn in an order fixed by ``seed``, for a fixed number of epochs (no
    early stopping and no choice made on the held-out split).

    Attributes:
        linear_epochs: passes of the linear classifier over the training features.
        linear_lr: its Adam learning rate (features are standardised with the training
            split's mean and standard deviation per feature).
        decoder_epochs: passes of the reconstruction decoder.
        decoder_lr: its Adam learning rate.
        batch_size: batch size of both probes and of feature extraction.
        train_samples: fit on this many training images (a subset fixed by ``seed``)
            instead of all, to bound time and memory on large datasets; ``None``: all.
        seed: the seed of every random choice of the probe (initialisation, batch order,
            subset); the same seed gives the same numbers on the same machine.

    Raises:
        ValueError: a value out of range (epochs or batch size below 1, a learning rate
            that is not a finite number above 0, a negative seed).

    Example:
        >>> ProbeSettings(decoder_epochs=5).linear_epochs
        30
    """

    linear_epochs: int = 30
    linear_lr: float = 1e-3
    decoder_epochs: int = 30
    decoder_lr: float = 1e-3
    batch_size: int = 128
    train_samples: int | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("linear_epochs", "decoder_epochs", "batch_size", "train_samples", "seed"):
            value = getattr(self, name)
            least = 0 if name == "seed" else 1
            if name == "train_samples" and value is None:
                continue
            if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least):
                unset = " (or None: all)" if name == "train_samples" else ""
                raise ValueError(f"probe setting {name} must be an integer >= {least}{unset}, got {value!r}")
        for name in ("linear_lr", "decoder_lr"):
            value = getattr(self, name)
            if not (
                isinstance(value, numbers.Real)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            ):
                raise ValueError(f"probe setting {name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class DepthProbe:
    """Both probes at one depth.

    Attributes:
        depth: 0 for the input, then 1, 2, ... for the block outputs in forward order.
        label: ``"input"`` or the cut point's label (``"layer2.3"``).
        cut_index: the cut point's index in the traced chain (``None`` for the input).
        stage: the run's stage (1..K) that computes these features (``None`` for the input).
        shape: one sample's feature shape.
        linear_train_acc: the linear classifier's accuracy on the training features.
        linear_test_acc: its accuracy on the held-out features (the ``I(h, y)`` proxy).
        recon_bce: the decoder's held-out binary cross-entropy per pixel (``None`` when the
            features have no spatial layout, see ``note``).
        recon_mse: its held-out mean squared error per pixel, images in [0, 1].
        recon_psnr_db: ``10 * log10(1 / recon_mse)`` (the ``I(h, x)`` proxy).
        note: why the reconstruction was not measured, else ``None``.
    """

    depth: int
    label: str
    cut_index: int | None
    stage: int | None
    shape: tuple[int, ...]
    linear_train_acc: float
    linear_test_acc: float
    recon_bce: float | None
    recon_mse: float | None
    recon_psnr_db: float | None
    note: str | None = None


@dataclass
class ProbeResult:
    """What :func:`probe` measured for one network.

    Attributes:
        run: the run folder (``None`` for a model given directly).
        model: the backbone name (or the model's class name).
        dataset: the dataset name (``None`` when datasets were given directly).
        method: ``"end-to-end"`` or the objective with its non-default options.
        k: the number of local modules the network was trained as.
        seed: the training seed (``None`` when unknown).
        cuts: the labels of the run's K - 1 cut points.
        cut_positions: where each cut lies on the depth axis (a depth, or halfway between
            two when a cut falls between block outputs).
        test_acc: the run's own final test accuracy (``None`` when unknown).
        num_classes, train_samples, test_samples: the data the probes saw.
        baselines: ``majority_acc`` (held-out accuracy of always answering the training
            split's most frequent class) and ``mean_image_psnr_db`` (held-out PSNR of
            always answering the training split's mean image): what no information gives.
        depths: one :class:`DepthProbe` per depth, the input first.
        settings: the :class:`ProbeSettings` used.
        seconds: wall time of the probe.
    """

    run: str | None
    model: str
    dataset: str | None
    method: str
    k: int
    seed: int | None
    cuts: list[str]
    cut_positions: list[float]
    test_acc: float | None
    num_classes: int
    train_samples: int
    test_samples: int
    baselines: dict
    depths: list[DepthProbe]
    settings: ProbeSettings
    seconds: float = field(default=0.0, compare=False)

    @property
    def group(self) -> str:
        """The curve this result belongs to: ``"end-to-end"`` or ``"<method>, K=<k>"``."""
        return self.method if self.k == 1 else f"{self.method}, K={self.k}"

    def to_dict(self) -> dict:
        """The result as JSON values (one entry of the ``runs`` list of ``probe.json``)."""
        data = asdict(self)
        for depth in data["depths"]:
            depth["shape"] = list(depth["shape"])
        return {"group": self.group, **data}

    @classmethod
    def from_dict(cls, data: dict) -> ProbeResult:
        """The result :meth:`to_dict` wrote (one entry of ``probe.json``'s ``runs``)."""
        data = {key: value for key, value in data.items() if key != "group"}
        depths = [DepthProbe(**{**d, "shape": tuple(d["shape"])}) for d in data.pop("depths")]
        settings = ProbeSettings(**data.pop("settings"))
        return cls(**data, depths=depths, settings=settings)


def load_probe(path: str | os.PathLike) -> list[ProbeResult]:
    """The results in a ``probe.json`` written by ``python -m splitnet probe``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON of the ``splitnet.probe/1`` schema.

    Example:
        >>> results = load_probe("runs/probe/probe.json")  # doctest: +SKIP
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: pass a probe.json written by `python -m splitnet probe`"
        )
    try:
        document = json.loads(path.read_text())
        if document.get("schema") != SCHEMA:
            raise ValueError(f"schema {document.get('schema')!r}, not {SCHEMA!r}")
        return [ProbeResult.from_dict(run) for run in document["runs"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a probe.json of splitnet's probe ({SCHEMA}): {exc}") from exc


def probe_points(chain: Chain) -> list[int]:
    """The cut points the probe measures: every block output, in forward order.

    A block is a module with submodules of its own (a stem, a stage, a residual block), or
    a direct child of an ``nn.Sequential`` model; a cut point is a block output when such
    a module's forward ends there. On a CIFAR ResNet-32 that is the stem and the 15
    residual blocks.

    Example:
        >>> import torch, splitnet
        >>> chain = splitnet.trace(splitnet.create_backbone("cifar_resnet20"), torch.randn(2, 3, 32, 32))
        >>> [chain.cuts[i].label for i in probe_points(chain)][:3]
        ['stem', 'layer1.0', 'layer1.1']
    """
    model = chain.model
    sequential = isinstance(model, nn.Sequential)

    def is_block(path: str) -> bool:
        if sequential and "." not in path:
            return True
        try:
            return any(True for _ in model.get_submodule(path).children())
        except AttributeError:
            return False

    return [cut.index for cut in chain.cuts if any(is_block(path) for path in cut.aliases)]


def reference_init(module: nn.Module) -> nn.Module:
    """Initialise as the reference code initialises its networks (``networks/resnet.py``).

    Convolution weights ``N(0, 2 / (kernel_h * kernel_w * out_channels))``, batch norm
    weight 1 and bias 0; convolution biases keep PyTorch's default initialisation.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class ReconstructionProbe(nn.Module):
    """The reference reconstruction decoder: features ``(B, C, h, w)`` -> image logits.

    ``interpolate(bilinear, align_corners=True)`` to the image size, ``conv3x3(C -> 12)``,
    batch norm, ReLU, ``conv3x3(12 -> image channels)``; ``sigmoid`` of the output is the
    predicted image in [0, 1] and :meth:`loss` its binary cross-entropy (the reference's
    ``nn.BCELoss`` on the sigmoid, computed from the logits for numerical stability).

    Features wider than 108 channels are first projected to 108 by a bias-free 1x1
    convolution (our extension: the reference's features have at most 64 channels). The
    first 3x3 convolution takes ``9 * 12 = 108`` linear combinations of the channels, and a
    1x1 convolution commutes with the interpolation, so the decoder can still express every
    decoder of the reference design while upsampling at most 108 channels.

    Args:
        channels: feature channels ``C``.
        image_shape: ``(channels, height, width)`` of the images to reconstruct.

    Example:
        >>> decoder = ReconstructionProbe(16, (3, 32, 32))
        >>> decoder(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, channels: int, image_shape: Sequence[int]):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        rank = 9 * HIDDEN
        self.project = nn.Conv2d(channels, rank, 1, bias=False) if channels > rank else nn.Identity()
        self.decoder = nn.Sequential(
            nn.Conv2d(min(channels, rank), HIDDEN, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(HIDDEN),
            nn.ReLU(),
            nn.Conv2d(HIDDEN, self.image_shape[0], kernel_size=3, stride=1, padding=1),
        )
        reference_init(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(
            self.project(features), size=self.image_shape[1:], mode="bilinear", align_corners=True
        )
        return self.decoder(x)

    def loss(self, features: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy per pixel between the reconstruction and ``images``."""
        return F.binary_cross_entropy_with_logits(self(features), images)


def _spatial_view(layout: str, model: nn.Module, shape: tuple[int, ...]):
    """A function turning a batch of features into ``(B, C, h, w)``, or ``None`` and why not."""
    if layout == "NCHW":
        return (lambda f: f), None
    if layout == "NHWC":
        return (lambda f: f.permute(0, 3, 1, 2)), None
    if layout == "NLC":
        grid, prefix = token_grid(model, shape[0])
        if grid is not None:
            return (lambda f: f[:, prefix:].unflatten(1, grid).permute(0, 3, 1, 2)), None
        return None, f"{shape[0]} tokens form no grid of patches: nothing to upsample"
    return None, f"features of shape {tuple(shape)} ({layout}) have no spatial layout to upsample"


def _batches(n: int, size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [order[i : i + size] for i in range(0, n, size)]


def _generator(seed: int, depth: int, which: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + depth * 101 + which)


def fit_linear(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    settings: ProbeSettings,
    generator: torch.Generator,
) -> tuple[float, float]:
    """Fit a linear classifier on flattened, standardised features; its train and test accuracy.

    The classifier starts at zero, so only the batch order (from ``generator``) is random.
    """
    train, test = train.flatten(1), test.flatten(1)
    dims = train.shape[1]
    total = torch.zeros(dims, dtype=torch.float64, device=train.device)
    squares = torch.zeros_like(total)
    for rows in _batches(len(train), settings.batch_size, None):
        chunk = train[rows].double()
        total += chunk.sum(0)
        squares += (chunk * chunk).sum(0)
    mean = total / len(train)
    std = (squares / len(train) - mean * mean).clamp(min=0).sqrt()
    # a feature that never varies carries nothing: centred, it is 0 whatever the scale
    scale = torch.where(std > 1e-6, 1 / std, torch.ones_like(std)).float()
    mean = mean.float()
    classifier = nn.Linear(dims, num_classes).to(train.device)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=settings.linear_lr)
    for _ in range(settings.linear_epochs):
        for rows in _batches(len(train), settings.batch_size, generator):
            rows = rows.to(train.device)
            loss = F.cross_entropy(classifier((train[rows] - mean) * scale), train_labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def accuracy(features: torch.Tensor, labels: torch.Tensor) -> float:
        correct = 0
        with torch.no_grad():
            for rows in _batches(len(features), settings.batch_size, None):
                rows = rows.to(features.device)
                correct += int((classifier((features[rows] - mean) * scale).argmax(1) == labels[rows]).sum())
        return correct / len(features)

    return accuracy(train, train_labels), accuracy(test, test_labels)


def fit_decoder(
    train: torch.Tensor,
    train_images: torch.Tensor,
    test: torch.Tensor,
    test_images: torch.Tensor,
    settings: ProbeSettings,
    generator: torch.Generator,
    init_seed: int,
    view=lambda f: f,
) -> dict:
    """Fit a :class:`ReconstructionProbe` on the training features; its held-out error.

    ``view`` turns a batch of features into ``(B, C, h, w)``; images are in [0, 1].

    Returns:
        ``bce`` (per pixel), ``mse`` (per pixel) and ``psnr_db`` on the held-out split.
    """
    channels = view(train[:1]).shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        decoder = ReconstructionProbe(channels, tuple(train_images.shape[1:]))
    decoder = decoder.to(train.device).train()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=settings.decoder_lr)
    for _ in range(settings.decoder_epochs):
        for rows in _batches(len(train), settings.batch_size, generator):
            rows = rows.to(train.device)
            if len(rows) < 2:
                continue  # batch norm cannot train on one sample
            loss = decoder.loss(view(train[rows]), train_images[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    decoder.eval()
    bce = squared = 0.0
    with torch.no_grad():
        for rows in _batches(len(test), settings.batch_size, None):
            rows = rows.to(test.device)
            logits = decoder(view(test[rows]))
            target = test_images[rows]
            bce += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
            squared += float(((torch.sigmoid(logits) - target) ** 2).sum())
    pixels = test_images.numel()
    mse = squared / pixels
    return {"bce": bce / pixels, "mse": mse, "psnr_db": _psnr(mse)}


def _psnr(mse: float) -> float:
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def _load(dataset, rows: int, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x.float())
        ys.append(torch.as_tensor(y).long())
    x, y = torch.cat(xs)[:rows], torch.cat(ys)[:rows]
    return x.to(device), y.to(device)


def _forward(module: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])


def _training_split(run: Run):
    """The run's training split as the probes see it: without augmentation where the dataset allows."""
    config = run.config
    options = dict(config.dataset_options)
    accepted = accepted_options(DATASETS.load(config.dataset), consumed=2)
    if accepted is not None and "augment" in accepted:
        options["augment"] = False
    else:
        logger.warning(
            "dataset %r has no augment option: the probes see its training split as it comes", config.dataset
        )
    return create_dataset(config.dataset, config.data_root, "train", **options)


def check_finished(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path if it holds a finished run, else a FileNotFoundError saying what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a run folder (no such folder): pass the --out folder of `python -m splitnet train`"
        )
    for needed in ("config.json", "checkpoint.pt"):
        if not (folder / needed).is_file():
            raise FileNotFoundError(
                f"{folder} is not a splitnet run: {folder / needed} is missing. Pass the --out folder of "
                "`python -m splitnet train`."
            )
    if not (folder / "summary.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds an unfinished run ({folder / 'summary.json'} is missing: it is still training, "
            f"or it stopped). Finish it with `python -m splitnet train ... --out {folder} --resume` before "
            "probing it."
        )
    return folder


def _describe(source, net: nn.Module) -> dict:
    """Run metadata: folder, model, dataset, method, K, seed, final test accuracy."""
    if isinstance(source, Run):
        import json

        config = source.config
        folder = Path(config.out)
        summary = folder / "summary.json"
        final = json.loads(summary.read_text())["final"] if summary.is_file() else {}
        saved = asdict(config)
        return {
            "run": os.fspath(folder),
            "model": config.model,
            "dataset": config.dataset,
            "method": method_label(saved),
            "k": net.k,
            "seed": config.seed,
            "test_acc": final.get("test_acc"),
            "num_classes": source.num_classes,
        }
    k = net.k if isinstance(net, LocalNet) else 1
    objective = net.plan.objective if isinstance(net, LocalNet) and net.plan is not None else None
    return {
        "run": None,
        "model": type(net.plan.chain.model if isinstance(net, LocalNet) else net).__name__,
        "dataset": None,
        "method": "end-to-end" if k == 1 else objective,
        "k": k,
        "seed": None,
        "test_acc": None,
        "num_classes": None,
    }


def probe(
    source: Run | str | os.PathLike | nn.Module,
    settings: ProbeSettings | None = None,
    *,
    train_set=None,
    test_set=None,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = False,
) -> ProbeResult:
    """Measure ``I(h, y)`` and ``I(h, x)`` proxies at the input and every block output.

    At each depth the features of the training and held-out split are computed once, in
    eval mode, and frozen; a linear classifier and the reference reconstruction decoder
    are fitted on the training features and scored on the held-out ones. See
    :class:`ProbeSettings` for the fitting and docs/splitnet.md for what it costs.

    Args:
        source: a finished run folder (``python -m splitnet train --out``), a :class:`Run`
            from :func:`splitnet.load_run`, a :class:`LocalNet`, or any traceable model.
        settings: how the probes are fitted (default: :class:`ProbeSettings`'s defaults).
        train_set: the split the probes are fitted on (default, for a run: the run's
            training split without augmentation). Required for a model.
        test_set: the held-out split they are scored on (default, for a run: the split the
            run was evaluated on). Required for a model. Both yield ``(image, label)`` with
            normalised images and carry ``mean`` and ``std`` (the ``splitnet.datasets``
            contract), from which the decoder's targets are restored.
        device: where a run folder is loaded and the probes run (a Run or model stays
            where it is).
        data_root: where a run folder's dataset lies now, if it moved since training.
        progress: show a progress bar (one step per depth).

    Returns:
        A :class:`ProbeResult`; ``result.to_dict()`` is its JSON form.

    Raises:
        FileNotFoundError: the folder does not exist, is not a run, or holds an unfinished
            run (no ``summary.json``).
        ValueError: a segmentation run (the probe reads class labels), a model without
            ``train_set``/``test_set``, or datasets without ``mean``/``std``.
        CheckpointError: the run's checkpoint is corrupt or from other settings.

    Example:
        >>> result = splitnet.probe("runs/greedy-k4", splitnet.ProbeSettings(seed=0))  # doctest: +SKIP
        >>> [(d.label, d.linear_test_acc, d.recon_psnr_db) for d in result.depths][:2]  # doctest: +SKIP
        [('input', 0.93, 31.2), ('stem', 0.95, 27.4)]
    """
    settings = settings or ProbeSettings()
    start = time.perf_counter()
    if isinstance(source, (str, os.PathLike)):
        source = load_run(check_finished(source), device=device, data_root=data_root)
    if isinstance(source, Run):
        if source.task != "classification":
            raise ValueError(
                f"the probe fits a classifier on class labels; {source.config.out} is a {source.task} run"
            )
        net = source.net
        train_set = train_set if train_set is not None else _training_split(source)
        test_set = test_set if test_set is not None else source.test_set
    elif isinstance(source, nn.Module):
        net = source
        if train_set is None or test_set is None:
            raise ValueError(
                "probing a model needs train_set= and test_set= (datasets yielding (image, label), "
                "with mean and std); a run folder or splitnet.load_run(...) brings its own"
            )
    else:
        raise TypeError(
            f"probe takes a run folder, a splitnet.Run or an nn.Module, got {type(source).__name__}"
        )
    for name, data in (("train_set", train_set), ("test_set", test_set)):
        if getattr(data, "mean", None) is None or getattr(data, "std", None) is None:
            raise ValueError(
                f"{name} must carry mean and std (the normalisation of its images), as splitnet.datasets "
                "entries do: the decoder reconstructs the images before normalisation"
            )
    info = _describe(source, net)
    device_ = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        result = _probe_net(net, train_set, test_set, settings, device_, info, progress)
    finally:
        net.train(was_training)
    result.seconds = time.perf_counter() - start
    return result


def _chain_of(net: nn.Module, example: torch.Tensor) -> tuple[Chain, list]:
    """The traced chain of ``net`` and the run's cut points (none for an unsplit model)."""
    if isinstance(net, LocalNet) and net.plan is not None:
        return net.plan.chain, [c.index for c in net.plan.cuts]
    return trace(net, example), []


def _probe_net(net, train_set, test_set, settings, device, info, progress) -> ProbeResult:
    from tqdm.auto import tqdm

    rows = len(train_set)
    if settings.train_samples is not None and settings.train_samples < rows:
        chosen = torch.randperm(rows, generator=_generator(settings.seed, 0, 9))[: settings.train_samples]
        train_set, rows = Subset(train_set, sorted(chosen.tolist())), settings.train_samples
    x_train, y_train = _load(train_set, rows, settings.batch_size, device)
    x_test, y_test = _load(test_set, len(test_set), settings.batch_size, device)
    mean = torch.tensor(train_set.dataset.mean if isinstance(train_set, Subset) else train_set.mean)
    std = torch.tensor(train_set.dataset.std if isinstance(train_set, Subset) else train_set.std)
    mean, std = mean.view(1, -1, 1, 1).to(device), std.view(1, -1, 1, 1).to(device)
    images_train = (x_train * std + mean).clamp(0, 1)
    images_test = (x_test * std + mean).clamp(0, 1)
    num_classes = info["num_classes"] or getattr(test_set, "num_classes", None)
    num_classes = num_classes or int(max(int(y_train.max()), int(y_test.max())) + 1)
    chain, run_cuts = _chain_of(net, x_test[:2])
    points = probe_points(chain)
    stage_ends = [] if not isinstance(net, LocalNet) else [b for _, b in net.plan.stages]
    majority = int(torch.bincount(y_train, minlength=num_classes).argmax())
    baselines = {
        "majority_acc": float((y_test == majority).float().mean()),
        "mean_image_psnr_db": _psnr(float(((images_test - images_train.mean(0)) ** 2).mean())),
    }
    depths = []
    bar = tqdm(
        total=len(points) + 1,
        desc=f"probe {info['run'] or info['model']}",
        leave=False,
        dynamic_ncols=True,
        disable=not progress,
    )
    train_h, test_h, piece = x_train, x_test, 0
    for depth, cut in enumerate([None, *points]):
        if cut is not None:
            module = chain.module(piece, cut + 1).eval()
            train_h = _forward(module, train_h, settings.batch_size)
            test_h = _forward(module, test_h, settings.batch_size)
            piece = cut + 1
        label = "input" if cut is None else chain.cuts[cut].label
        bar.set_postfix_str(label)
        depths.append(
            _measure(
                depth,
                label,
                cut,
                _stage_of(cut, stage_ends),
                (train_h, y_train, images_train),
                (test_h, y_test, images_test),
                num_classes,
                settings,
                chain,
            )
        )
        logger.info(
            "probe %s: %s linear acc %.4f, PSNR %s dB",
            info["run"] or info["model"],
            label,
            depths[-1].linear_test_acc,
            depths[-1].recon_psnr_db,
        )
        bar.update()
    bar.close()
    return ProbeResult(
        run=info["run"],
        model=info["model"],
        dataset=info["dataset"],
        method=info["method"],
        k=info["k"],
        seed=info["seed"],
        cuts=[chain.cuts[c].label for c in run_cuts],
        cut_positions=[_position(c, points) for c in run_cuts],
        test_acc=info["test_acc"],
        num_classes=num_classes,
        train_samples=len(x_train),
        test_samples=len(x_test),
        baselines=baselines,
        depths=depths,
        settings=settings,
    )


def _stage_of(cut: int | None, stage_ends: list[int]) -> int | None:
    if cut is None:
        return None
    if not stage_ends:
        return 1
    return next(s for s, end in enumerate(stage_ends, 1) if cut < end)


def _position(cut: int, points: list[int]) -> float:
    """A run's cut on the depth axis: its depth, or halfway after the last block output before it."""
    if cut in points:
        return float(points.index(cut) + 1)
    return sum(p < cut for p in points) + 0.5


def _measure(depth, label, cut, stage, train, test, num_classes, settings, chain) -> DepthProbe:
    (train_h, train_y, train_images), (test_h, test_y, test_images) = train, test
    shape = tuple(train_h.shape[1:])
    train_acc, test_acc = fit_linear(
        train_h, train_y, test_h, test_y, num_classes, settings, _generator(settings.seed, depth, 1)
    )
    layout = "NCHW" if cut is None else infer_layout(shape, tuple(train_images.shape[1:]))
    view, note = _spatial_view(layout, chain.model, shape)
    recon = {"bce": None, "mse": None, "psnr_db": None}
    if view is not None:
        recon = fit_decoder(
            train_h,
            train_images,
            test_h,
            test_images,
            settings,
            _generator(settings.seed, depth, 2),
            settings.seed * 1_000_003 + depth,
            view,
        )
    return DepthProbe(
        depth=depth,
        label=label,
        cut_index=cut,
        stage=stage,
        shape=shape,
        linear_train_acc=train_acc,
        linear_test_acc=test_acc,
        recon_bce=recon["bce"],
        recon_mse=recon["mse"],
        recon_psnr_db=recon["psnr_db"],
        note=note,
    )
