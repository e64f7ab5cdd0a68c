"""Load annotation pickles without letting them run code, crash the process or take all memory.

The AQA benchmarks publish their annotations as pickles, and ``pickle.load`` on a file
someone else wrote runs whatever that file asks for. The unpickler here resolves only the
handful of globals these files need, builtin containers and numpy arrays and scalars; any
other reference (``os.system``, ``builtins.eval``, ...) stops the load before it happens.

Refusing code is not enough: a pickle of a few bytes can still ask for gigabytes
(``bytearray(2**40)``, a numpy array of shape ``(2**40,)``, a ``BYTEARRAY8`` opcode that
announces a huge length, a list of millions of empty sets built one opcode byte each), or
crash numpy and the interpreter (an object array whose state holds fewer items than its
shape, a tuple nested a million deep used as a dict key). So the load runs on Python's own
unpickler (``pickle._Unpickler``, whose opcode table can be extended) with these guards:

- every opcode is charged its worst-case memory before it runs (an object plus its slot in a
  container), the file's bytes six times over (text decoded from it takes at most four bytes
  per byte, framing copies it once), and every array, bytearray or scalar a constructor
  builds its size: the whole load may not exceed ``max_load_bytes``;
- no single object built may exceed ``max_object_bytes``, checked before it is allocated;
- numpy constructors get only what numpy itself writes: plain (not structured) dtypes, array
  states whose data matches their shape, ``ndarray`` only through ``_reconstruct``;
- items go only into the containers pickle fills (lists, dicts, sets), state only into numpy
  arrays and dtypes, and tuples nest at most ``MAX_TUPLE_DEPTH`` deep.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import pickletools
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _files
from ._errors import DatasetError, UnsafePickleError

MAX_OBJECT_BYTES = 64 * 2**20
MAX_LOAD_BYTES = 512 * 2**20
MAX_TUPLE_DEPTH = 100
# The unpickler itself: its tables, stacks and frame buffer before any data.
BASE_COST = 64 * 2**10
# Memory per byte of the file: the bytes themselves, one copy in a frame, up to four in text.
FILE_BYTE_COST = 6
# Worst case of one opcode: a new object (a str header is 56 bytes) plus its slot in a
# container, a dict entry counted with the table it may be copied into when the dict grows.
OPCODE_COST = 128
# Opcodes that create a container: its empty size and first table come on top.
CONTAINER_COST = {
    "EMPTY_LIST": 64,
    "LIST": 64,
    "EMPTY_DICT": 320,
    "DICT": 320,
    "EMPTY_SET": 256,
    "FROZENSET": 256,
}
# Per item a constructor puts in a set: the entry and its share of the table.
SET_ITEM_COST = 128

_NUMPY_MODULES = {
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
}
_REAL_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_REAL_SCALAR = np.float64(0).__reduce__()[0]
_DTYPE_ENDIANS = ("<", ">", "|", "=")
_DATETIME_UNITS = {
    u.encode() for u in ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "generic"]
}


class _TooLarge(Exception):
    pass


class _Refused(Exception):
    """The pickle asks for something numpy or the interpreter must not be given."""


def _count(shape: Any, what: str) -> int:
    """The number of items of a shape tuple of non-negative integers."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _Refused(f"{what} has shape {shape!r}, not a tuple of non-negative integers")
    return math.prod(int(n) for n in shape)


def _plain_dtype(dtype: Any, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"{what} has dtype {dtype!r}, not a numpy dtype")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"{what} has the structured dtype {dtype}; annotations need plain dtypes only")
    return dtype


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's unpickler with the guards of the module notes; ``charged`` is the estimate so far."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, path: str, max_object_bytes: int, max_load_bytes: int):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._max_object = max_object_bytes
        self._max_load = max_load_bytes
        self._tuple_depth: dict[int, int] = {}
        self.charged = 0
        self._globals: dict[tuple[str, str], Any] = {
            ("builtins", "set"): self._set,
            ("builtins", "frozenset"): self._frozenset,
            ("builtins", "bytearray"): self._bytearray,
            ("builtins", "bytes"): self._bytes,
            ("builtins", "complex"): self._complex,
            # Protocol-2 pickles (numpy arrays written by older Pythons) spell bytes as _codecs.encode(str, "latin1").
            ("_codecs", "encode"): self._encode,
        }
        # The ndarray class only ever travels as _reconstruct's first argument; this stands for it.
        self._array_type = self._ndarray
        # numpy moved its pickle helpers from numpy.core to numpy._core in 2.0; files name either.
        numpy_globals = {
            "_reconstruct": self._reconstruct,
            "_frombuffer": self._frombuffer,
            "scalar": self._scalar,
            "ndarray": self._array_type,
            "dtype": self._dtype,
        }
        for module in _NUMPY_MODULES:
            self._globals.update({(module, name): value for name, value in numpy_globals.items()})

    # --- the budget ---

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` against the whole load; raise once the total passes the limit."""
        self.charged += nbytes
        if self.charged > self._max_load:
            raise _TooLarge(
                f"loading it would take more than {self._max_load} bytes of memory (at {what}); "
                f"the limit is max_load_bytes={self._max_load}"
            )

    def charge_object(self, nbytes: int, what: str) -> None:
        """Count one object of ``nbytes``; raise, before it exists, if it alone is too large."""
        if nbytes > self._max_object:
            raise _TooLarge(
                f"it asks for {what} of {nbytes} bytes, more than the {self._max_object} bytes one object "
                f"may take (max_object_bytes={self._max_object})"
            )
        self.charge(nbytes, what)

    # --- globals ---

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module
        found = self._globals.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"refusing to load annotation pickle '{self._path}': it refers to '{module}.{name}', "
                "and only builtin containers and numpy arrays are allowed. If you trust the file, "
                "convert it with pickle yourself; otherwise it may be malicious"
            )
        return found

    def _sized(self, items: Any, what: str) -> int:
        try:
            return len(items)
        except TypeError:
            raise _Refused(f"{what} is built from a {type(items).__name__}, which has no length") from None

    def _set(self, items: Any = ()) -> set:
        self.charge(SET_ITEM_COST * self._sized(items, "a set"), "a set")
        return set(items)

    def _frozenset(self, items: Any = ()) -> frozenset:
        self.charge(SET_ITEM_COST * self._sized(items, "a frozenset"), "a frozenset")
        return frozenset(items)

    def _complex(self, *args: Any) -> complex:
        return complex(*args)

    def _byte_count(self, source: Any, what: str) -> int:
        if isinstance(source, str):
            return (
                4 * len(source) + 4
            )  # no text encoding takes more than four bytes per character, plus a BOM
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            return int(source)
        if isinstance(source, (bytes, bytearray, list, tuple)):
            return len(source)
        raise _Refused(f"{what} is built from a {type(source).__name__}")

    def _bytearray(self, source: Any = b"", encoding: str | None = None, errors: str = "strict") -> bytearray:
        self.charge_object(self._byte_count(source, "a bytearray"), "a bytearray")
        return bytearray(source) if encoding is None else bytearray(source, encoding, errors)

    def _bytes(self, source: Any = b"", encoding: str | None = None, errors: str = "strict") -> bytes:
        # Protocol-2 pickles write empty bytes as bytes().
        self.charge_object(self._byte_count(source, "a bytes object"), "a bytes object")
        return bytes(source) if encoding is None else bytes(source, encoding, errors)

    def _encode(self, text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if not isinstance(text, str) or not codecs.lookup(encoding)._is_text_encoding:
            raise _Refused(f"_codecs.encode is asked to apply '{encoding}' to a {type(text).__name__}")
        self.charge_object(4 * len(text) + 4, "an encoded string")
        return codecs.encode(text, encoding, errors)

    def _ndarray(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise _Refused("it calls numpy.ndarray directly, which numpy's own pickles never do")

    def _dtype(self, spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
        if not isinstance(spec, (str, bytes)):
            raise _Refused(f"a numpy dtype is built from {spec!r}; annotations need plain dtypes only")
        # Always a copy: BUILD sets the state of this dtype, and numpy's shared float64 must stay as it is.
        dtype = np.dtype(spec, bool(align), True)
        self.charge_object(dtype.itemsize, "a numpy dtype's item")
        return _plain_dtype(dtype, "a numpy dtype")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not self._array_type:
            raise _Refused(f"numpy's _reconstruct is asked for a {subtype!r}, not an ndarray")
        dtype = np.dtype(dtype) if isinstance(dtype, (str, bytes)) else _plain_dtype(dtype, "an array")
        self.charge_object(_count(shape, "an array") * dtype.itemsize, "a numpy array")
        return _REAL_RECONSTRUCT(np.ndarray, shape, dtype)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: str = "C") -> np.ndarray:
        dtype = _plain_dtype(dtype, "an array")
        if dtype.hasobject or not isinstance(buffer, (bytes, bytearray)):
            raise _Refused(f"an array of {dtype} is built from a {type(buffer).__name__}")
        nbytes = _count(shape, "an array") * dtype.itemsize
        if nbytes != len(buffer):
            raise _Refused(
                f"an array of shape {shape} and dtype {dtype} comes with {len(buffer)} bytes of data"
            )
        self.charge_object(nbytes, "a numpy array")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        dtype = _plain_dtype(dtype, "a numpy scalar")
        self.charge_object(dtype.itemsize, "a numpy scalar")
        if not dtype.hasobject and not (isinstance(data, (bytes, str)) and len(data) == dtype.itemsize):
            raise _Refused(f"a numpy scalar of {dtype} comes with {data!r:.40} as its data")
        return _REAL_SCALAR(dtype, data) if data is not None else _REAL_SCALAR(dtype)

    # --- states ---

    def check_state(self, inst: Any, state: Any) -> None:
        """Allow BUILD only on numpy arrays and dtypes, with states as numpy writes them."""
        if type(inst) is np.ndarray:
            self._check_array_state(state)
        elif isinstance(inst, np.dtype):
            self._check_dtype_state(inst, state)
        else:
            raise _Refused(f"it sets the state of a {type(inst).__name__}, which only numpy objects need")

    def _check_array_state(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused(f"a numpy array's state is {type(state).__name__} {state!r:.60}")
        shape, dtype, _, data = state[-4:]
        dtype = _plain_dtype(dtype, "an array")
        count = _count(shape, "an array")
        if dtype.hasobject:
            # numpy reads the items without checking their number: fewer than the shape crashes it.
            if not isinstance(data, list) or len(data) != count:
                raise _Refused(f"an object array of shape {shape} comes with {type(data).__name__} items")
        else:
            nbytes = count * dtype.itemsize
            if not isinstance(data, (bytes, bytearray, str)) or len(data) != nbytes:
                raise _Refused(
                    f"an array of shape {shape} and dtype {dtype} comes with {data!r:.40} as its data"
                )
        self.charge_object(count * dtype.itemsize, "a numpy array")

    def _check_dtype_state(self, dtype: np.dtype, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[:1] not in ((3,), (4,)):
            raise _Refused(f"a numpy dtype's state is {state!r:.80}")
        if state[2:5] != (None, None, None):
            raise _Refused(
                f"a numpy dtype is given the structured dtype state {state!r:.80}; annotations need plain dtypes only"
            )
        if state[1] not in _DTYPE_ENDIANS:
            raise _Refused(f"a numpy dtype's byte order is {state[1]!r}")
        written = dtype.newbyteorder(state[1]).__reduce__()[2]
        # The state numpy writes for this dtype in that byte order: nothing else may be set, but a datetime's unit.
        metadata = state[8] if len(state) == 9 else None
        if state[5:8] != written[5:8] or not (
            metadata == (written[8] if len(written) == 9 else None) or _datetime_metadata(dtype, metadata)
        ):
            raise _Refused(f"a numpy dtype {dtype} comes with the state {state!r:.80}, not numpy's {written}")

    def nested_tuple(self, items: tuple) -> tuple:
        depth = 1 + max((self._tuple_depth.get(id(i), 1) for i in items if type(i) is tuple), default=0)
        if depth > MAX_TUPLE_DEPTH:
            # Hashing a tuple recurses through its items in C: a deep one used as a key crashes the process.
            raise _Refused(f"it nests tuples more than {MAX_TUPLE_DEPTH} deep")
        self._tuple_depth[id(items)] = depth
        return items


def _datetime_metadata(dtype: np.dtype, metadata: Any) -> bool:
    """Whether ``metadata`` is a datetime or timedelta unit as numpy writes it: ``(None, (unit, count, 1, 1))``."""
    if (
        dtype.kind not in "mM"
        or not isinstance(metadata, tuple)
        or len(metadata) != 2
        or metadata[0] is not None
    ):
        return False
    unit = metadata[1]
    return (
        isinstance(unit, tuple)
        and len(unit) == 4
        and unit[0] in _DATETIME_UNITS
        and all(type(v) is int and 1 <= v < 2**31 for v in unit[1:])
    )


def _guarded(name: str, load: Callable[[Any], None]) -> Callable[[Any], None]:
    cost = OPCODE_COST + CONTAINER_COST.get(name, 0)

    def run(self: _RestrictedUnpickler) -> None:
        self.charge(cost, f"opcode {name}")
        load(self)

    return run


def _into(kind: type, target: Callable[[Any], Any], load: Callable[[Any], None]) -> Callable[[Any], None]:
    """Check that the opcode fills a ``kind`` (the list, dict or set below its items) before it runs."""

    def run(self: _RestrictedUnpickler) -> None:
        found = target(self)
        if type(found) is not kind:
            raise _Refused(f"it adds items to a {type(found).__name__} where pickle fills a {kind.__name__}")
        load(self)

    return run


def _below_mark(self: _RestrictedUnpickler) -> Any:
    return self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None


def _load_build(self: _RestrictedUnpickler) -> None:
    if len(self.stack) < 2:
        raise pickle.UnpicklingError("BUILD with an empty stack")
    self.check_state(self.stack[-2], self.stack[-1])
    pickle._Unpickler.load_build(self)


def _load_bytearray8(self: _RestrictedUnpickler) -> None:
    # Python's own version allocates the announced length before reading a byte of it.
    (size,) = struct.unpack("<Q", self.read(8))
    self.charge_object(size, "a bytearray")
    data = self.read(size)
    if len(data) != size:
        raise pickle.UnpicklingError("the pickle ends inside a bytearray")
    self.append(bytearray(data))


def _tuple_opcode(load: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(self: _RestrictedUnpickler) -> None:
        load(self)
        self.stack[-1] = self.nested_tuple(self.stack[-1])

    return run


def _install_guards(dispatch: dict[int, Callable[[Any], None]]) -> None:
    base = pickle._Unpickler
    by_code = {op.code.encode("latin1")[0]: op.name for op in pickletools.opcodes}
    special: dict[str, Callable[[Any], None]] = {
        "APPEND": _into(list, lambda u: u.stack[-2] if len(u.stack) > 1 else None, base.load_append),
        "APPENDS": _into(list, _below_mark, base.load_appends),
        "SETITEM": _into(dict, lambda u: u.stack[-3] if len(u.stack) > 2 else None, base.load_setitem),
        "SETITEMS": _into(dict, _below_mark, base.load_setitems),
        "ADDITEMS": _into(set, _below_mark, base.load_additems),
        "BUILD": _load_build,
        "BYTEARRAY8": _load_bytearray8,
        "TUPLE": _tuple_opcode(base.load_tuple),
        "TUPLE1": _tuple_opcode(base.load_tuple1),
        "TUPLE2": _tuple_opcode(base.load_tuple2),
        "TUPLE3": _tuple_opcode(base.load_tuple3),
    }
    for code, load in list(dispatch.items()):
        name = by_code[code]
        dispatch[code] = _guarded(name, special.get(name, load))


_install_guards(_RestrictedUnpickler.dispatch)


def unpickle(data: bytes, path: str, max_object_bytes: int, max_load_bytes: int) -> tuple[Any, int]:
    """Unpickle ``data`` (read from ``path``) under the guards; return the object and the bytes charged."""
    unpickler = _RestrictedUnpickler(io.BytesIO(data), path, max_object_bytes, max_load_bytes)
    unpickler.charge(BASE_COST + FILE_BYTE_COST * len(data), "the file itself")
    return unpickler.load(), unpickler.charged


def load_pickle(
    path: str | os.PathLike,
    *,
    max_object_bytes: int = MAX_OBJECT_BYTES,
    max_load_bytes: int = MAX_LOAD_BYTES,
) -> Any:
    """Load an annotation pickle that may only contain builtins and numpy arrays, in bounded memory.

    Args:
        path: the ``.pkl`` file (e.g. MTL-AQA's ``augmented_final_annotations_dict.pkl``).
        max_object_bytes: the largest single object (array, bytearray, string) the file may
            build, checked before it is allocated (64 MiB).
        max_load_bytes: the most memory the whole load may take, as estimated before each
            step: six bytes per byte of the file, a worst case per opcode, and the size of
            every array and bytearray (512 MiB; the real MTL-AQA annotations need 11 MiB).

    Returns:
        The unpickled object.

    Raises:
        DatasetError: the file is missing, not a regular file, not a readable pickle, or
            asks for more memory than the limits allow.
        UnsafePickleError: the pickle refers to anything else than builtins and numpy
            arrays (it would run code), or gives numpy a state numpy itself never writes.

    Example:
        >>> labels = vidio.load_pickle("JIGSAWS/label.pkl")  # doctest: +SKIP
        >>> labels["Suturing_B001"]  # doctest: +SKIP
        [4, 4, 3, 4, 3, 4]
    """
    path = os.fspath(path)
    try:
        data = _files.read_regular(path, limit=max_load_bytes // FILE_BYTE_COST)
    except _files.FileTooLarge as exc:
        raise DatasetError(
            f"refusing to load annotation pickle '{path}': {exc.reason}, as a load may take "
            f"{FILE_BYTE_COST} bytes of memory per byte of file (max_load_bytes={max_load_bytes})"
        ) from None
    except _files.PathProblem as exc:
        if exc.missing:
            raise DatasetError(f"annotation file '{path}' does not exist; check the dataset root") from None
        raise DatasetError(f"annotation file '{path}' cannot be read: {exc.reason}") from None
    try:
        return unpickle(data, path, max_object_bytes, max_load_bytes)[0]
    except UnsafePickleError:
        raise
    except _Refused as exc:
        raise UnsafePickleError(
            f"refusing to load annotation pickle '{path}': {exc}; numpy's own pickles never do this, "
            "so the file is damaged or malicious"
        ) from None
    except _TooLarge as exc:
        raise DatasetError(f"refusing to load annotation pickle '{path}': {exc}") from None
    except Exception as exc:  # a damaged pickle can fail in many ways; name the file
        raise DatasetError(
            f"annotation file '{path}' is not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc
