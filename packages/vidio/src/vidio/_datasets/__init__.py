"""Datasets of scored clips, one module per dataset on a shared base (torchvision's layout).

- ``base.py``: :class:`ClipRecord` (one sample: which video, which frames, which scores),
  :class:`ClipDataset` (opens, samples, decodes and transforms clips into items) and the
  helpers the dataset modules share.
- ``checks.py``: annotation values read strictly (finite numbers in range, integers, flat
  rows of scores), with errors that name the file, the sample and what was expected.
- ``mtl_aqa.py``, ``jigsaws.py``, ``aqa7.py``, ``csv_manifest.py``: one dataset each, which
  reads and checks its annotation files into records, picks the sampler and score ranges
  of its reference code, and says where its data comes from when the root is missing.
- ``registry.py``: the ``vidio.datasets`` entry-point group (:func:`vidio.create_dataset`).

The dataset classes are the factories of that group, declared in vidio's ``pyproject.toml``
like any plugin's: ``factory(root, split, **options)`` with items and attributes as
``docs/plugins.md`` specifies. Their options are their keyword parameters plus the
:class:`~vidio._datasets.base.ClipOptions` they pass on to :class:`ClipDataset`
(``**options: Unpack[ClipOptions]``), so a misspelled option is an error naming them. To add a dataset, write a module like ``jigsaws.py`` and
declare its class under ``[project.entry-points."vidio.datasets"]``.
"""

from .aqa7 import AQA7
from .base import ClipDataset, ClipRecord
from .csv_manifest import CSVDataset
from .jigsaws import JIGSAWS
from .mtl_aqa import MTLAQA
from .registry import create_dataset, list_datasets, provenance

__all__ = [
    "AQA7",
    "JIGSAWS",
    "MTLAQA",
    "CSVDataset",
    "ClipDataset",
    "ClipRecord",
    "create_dataset",
    "list_datasets",
    "provenance",
]
