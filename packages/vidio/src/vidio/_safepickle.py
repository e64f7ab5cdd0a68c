"""Load annotation pickles without letting them run code.

The AQA benchmarks publish their annotations as pickles, and ``pickle.load`` on a file
someone else wrote runs whatever that file asks for. The unpickler here resolves only the
handful of globals these files need, builtin containers and numpy arrays and scalars; any
other reference (``os.system``, ``builtins.eval``, ...) stops the load before it happens.
"""

from __future__ import annotations

import codecs
import os
import pickle
from typing import Any

import numpy as np

from ._errors import DatasetError, UnsafePickleError

# Plain data in pickles uses opcodes; these are the only globals the data itself needs.
_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "bytearray": bytearray, "slice": slice}
# numpy moved its pickle helpers from numpy.core to numpy._core in 2.0; files name either.
_NUMPY = {
    "_reconstruct": np.zeros(1).__reduce__()[0],
    "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
    "scalar": np.float64(0).__reduce__()[0],
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}
_NUMPY_MODULES = {
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
}


# Protocol-2 pickles (numpy arrays written by older Pythons) spell bytes as _codecs.encode(str, "latin1").
_CODECS = {"encode": codecs.encode}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module in _NUMPY_MODULES and name in _NUMPY:
            return _NUMPY[name]
        if module == "_codecs" and name in _CODECS:
            return _CODECS[name]
        raise UnsafePickleError(
            f"refusing to load annotation pickle '{self._path}': it refers to '{module}.{name}', "
            "and only builtin containers and numpy arrays are allowed. If you trust the file, "
            "convert it with pickle yourself; otherwise it may be malicious"
        )


def load_pickle(path: str | os.PathLike) -> Any:
    """Load an annotation pickle that may only contain builtins and numpy arrays.

    Args:
        path: the ``.pkl`` file (e.g. MTL-AQA's ``augmented_final_annotations_dict.pkl``).

    Returns:
        The unpickled object.

    Raises:
        DatasetError: the file is missing or is not a readable pickle.
        UnsafePickleError: the pickle refers to anything else (it would run code).

    Example:
        >>> labels = vidio.load_pickle("JIGSAWS/label.pkl")  # doctest: +SKIP
        >>> labels["Suturing_B001"]  # doctest: +SKIP
        [4, 4, 3, 4, 3, 4]
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            return _RestrictedUnpickler(file, path).load()
    except UnsafePickleError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"annotation file '{path}' does not exist; check the dataset root") from None
    except Exception as exc:  # a damaged pickle can fail in many ways; name the file
        raise DatasetError(
            f"annotation file '{path}' is not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc
