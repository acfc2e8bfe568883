"""Checkpoints: ``save(obj, path)`` / ``load(path)`` without pickle, written atomically.

A checkpoint is one ``.npz`` (zip) file. Every array of ``obj`` is stored as its own ``.npy``
member (``a0``, ``a1``, ...); the structure around them — nested dicts, lists, tuples,
numbers, strings, bools, None — is described by a JSON document stored in the member
``__handgrad__`` (format name, format version, and for each array its dtype and shape).

* Loading uses ``np.load(..., allow_pickle=False)`` and ``json``: it never executes code,
  and a file holding a pickled object array is refused.
* Saving writes a temporary file in the target directory, flushes and fsyncs it, then
  ``os.replace``\\ s it onto ``path``. If anything fails (a full disk, an unsupported value)
  the temporary file is removed and an earlier checkpoint at ``path`` is left intact.

Values that can be saved: ``numpy`` arrays of bool/int/uint/float/complex/str dtype, numpy
scalars, Python ``int`` (of any size), ``float`` (also nan/inf), ``bool``, ``str``, ``None``,
``dict`` (keys: str, int, float, bool or None), ``list``, ``tuple``, a ``Layer`` (stored as
its ``state_dict()``) and a ``numpy.random.Generator`` (stored as its bit generator state;
loaded back as a new Generator in the same state).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from ..layer import Layer
from ..random import generator_from_state, rng_state, set_rng_state

__all__ = ["save", "load", "load_into", "remove_stale_temporaries", "rng_state", "set_rng_state",
           "generator_from_state"]

FORMAT_NAME = "handgrad-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "__handgrad__"
_ARRAY_KINDS = "biufcUS"
_SAFE_INT = 2**53  # larger ints are written as strings (JSON readers lose precision)


# ---------------------------------------------------------------------- encoding
class _Encoder:
    """Turns ``obj`` into a JSON tree plus a dict of arrays (``a0``, ``a1``, ...)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, Layer):
            return self.encode(value.state_dict(), where)
        if isinstance(value, np.random.Generator):
            return {"type": "generator", "state": rng_state(value)}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, np.generic):
            if value.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(f"handgrad.save: cannot store {value.dtype} scalar at {where}")
            return {"type": "scalar", "dtype": value.dtype.str,
                    "value": self.encode(value.item(), where)}
        if isinstance(value, int):
            if abs(value) < _SAFE_INT:
                return value
            # hex past Python's limit on decimal conversions (4300 digits); int(s, 0) reads both
            text = str(value) if value.bit_length() < 10_000 else hex(value)
            return {"type": "int", "value": text}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"type": "float", "value": repr(value)}
        if isinstance(value, Mapping):
            items = []
            for k, v in value.items():
                if not (k is None or isinstance(k, (str, int, float, bool, np.integer))):
                    raise TypeError(f"handgrad.save: cannot store dict key {k!r} of type "
                                    f"{type(k).__name__} at {where}")
                key = int(k) if isinstance(k, np.integer) else k
                items.append([self.encode(key, where), self.encode(v, f"{where}[{k!r}]")])
            return {"type": "dict", "items": items}
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            return {"type": kind,
                    "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        hint = ""
        if type(value).__name__ == "Parameter":
            hint = " (store parameter.data, or the model's state_dict())"
        raise TypeError(
            f"handgrad.save: cannot store a {type(value).__name__} at {where}{hint}; "
            f"checkpoints hold arrays, numbers, strings, bools, None, dicts, lists, tuples, "
            f"Layers and numpy Generators"
        )

    def _array(self, array: np.ndarray, where: str) -> dict:
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.fields is not None:
            raise TypeError(
                f"handgrad.save: cannot store an array of dtype {array.dtype} at {where}; "
                f"only bool, integer, float, complex and string arrays (no object arrays)"
            )
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return {"type": "array", "key": key, "dtype": array.dtype.str,
                "shape": list(array.shape)}


class _Decoder:
    def __init__(self, path: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.path = path
        self.arrays = arrays

    def bad(self, what: str) -> ValueError:
        return ValueError(f"handgrad.load: {self.path} is not a valid handgrad checkpoint "
                          f"({what})")

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list) or not isinstance(node, dict) or "type" not in node:
            raise self.bad(f"unexpected metadata node {node!r:.80}")
        kind = node["type"]
        try:
            if kind == "dict":
                return {self.decode(k): self.decode(v) for k, v in node["items"]}
            if kind == "list":
                return [self.decode(v) for v in node["items"]]
            if kind == "tuple":
                return tuple(self.decode(v) for v in node["items"])
            if kind == "array":
                return self._array(node)
            if kind == "scalar":
                dtype = np.dtype(node["dtype"])
                if dtype.kind not in _ARRAY_KINDS:
                    raise self.bad(f"scalar of dtype {dtype} (only {_ARRAY_KINDS!r} kinds)")
                return dtype.type(self.decode(node["value"]))
            if kind == "int":
                value = node["value"]
                if not isinstance(value, str):
                    raise TypeError(f"expected the digits as a string, got {value!r:.40}")
                return int(value, 0)
            if kind == "float":
                return float(node["value"])
            if kind == "generator":
                return generator_from_state(node["state"])
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ValueError) and str(err).startswith("handgrad.load"):
                raise
            raise self.bad(f"malformed {kind!r} entry: {err}") from err
        raise self.bad(f"unknown entry type {kind!r}")

    def _array(self, node: dict) -> np.ndarray:
        key = node["key"]
        if key not in self.arrays:
            raise self.bad(f"array member {key!r} is missing")
        array = self.arrays[key]
        if array.dtype != np.dtype(node["dtype"]) or list(array.shape) != list(node["shape"]):
            raise self.bad(
                f"array {key!r} has dtype {array.dtype} and shape {array.shape}, the "
                f"metadata says {node['dtype']} and {tuple(node['shape'])}"
            )
        return array


# ---------------------------------------------------------------------- save / load
def _check_path(owner: str, path: Any) -> str:
    """``path`` as a str, or TypeError naming ``owner`` (e.g. for None or an int)."""
    if isinstance(path, bytes):
        return os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r:.60}")
    return os.fspath(path)


def _write_arrays(file: Any, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """Write the npz payload to an open binary file (a seam tests use to simulate failures)."""
    (np.savez_compressed if compress else np.savez)(file, **arrays)


def save(obj: Any, path: str | os.PathLike, compress: bool = False) -> None:
    """Write ``obj`` (a dict of arrays/numbers/..., or a Layer) to ``path`` atomically.

    Example::

        handgrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "epoch": 3, "rng": rng}, "ckpt/last.npz")

    The file is named exactly ``path`` (no suffix is added; ``.npz`` is customary). The
    directory must exist. On any error the previous file at ``path`` is untouched and no
    temporary file is left behind.
    """
    path = _check_path("handgrad.save", path)
    root = obj
    if isinstance(obj, Layer):
        root = obj.state_dict()
    elif not isinstance(obj, Mapping):
        raise TypeError(f"handgrad.save: expected a dict or a Layer, got {type(obj).__name__}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"handgrad.save: {path} is a directory; pass a file path "
                                f"inside it, e.g. {os.path.join(path, 'last.npz')}")
    encoder = _Encoder()
    try:
        tree = encoder.encode(root, "obj")
    except RecursionError:
        raise ValueError("handgrad.save: obj is nested too deeply or contains itself (a "
                         "dict or list that holds itself cannot be stored)") from None
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": tree}
    meta_bytes = json.dumps(meta, allow_nan=False, separators=(",", ":")).encode("utf-8")
    arrays = dict(encoder.arrays)
    arrays[_META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"handgrad.save: directory {directory} does not exist "
                                f"(create it before saving {path})")
    # mkstemp creates the file 0600: give it the old checkpoint's mode, or rw-r--r--
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        _hold(fd)  # while this process lives, no other save or load takes the file for stale
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), mode)
            _write_arrays(file, arrays, compress)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):
            raise OSError(err.errno, f"handgrad.save: writing {path} failed "
                                     f"({err.strerror or err}); the previous file at that path "
                                     f"is unchanged") from err
        raise
    _fsync_directory(directory)


def _temporary_prefix(path: str) -> str:
    return f".{os.path.basename(path)}."


def _hold(fd: int) -> None:
    """Lock a temporary file for as long as the writing process lives (POSIX ``flock``)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files that saves to ``path`` killed mid-write left behind.

    A save writes ``.NAME.XXXXXXXX.tmp`` beside ``path`` and holds an exclusive ``flock`` on
    it until it renames it; the lock dies with the process. So a temporary whose lock can be
    taken belongs to no running save and is removed; one that a live save is writing is left
    alone. (Without ``fcntl``, e.g. on Windows, nothing is removed.) Returns the removed
    paths. ``save`` and ``load`` call this for their path.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    ours = re.compile(re.escape(_temporary_prefix(path)) + r"[A-Za-z0-9_]{8}\.tmp")
    removed: list[str] = []
    if fcntl is None:
        return removed
    try:
        names = [n for n in os.listdir(directory) if ours.fullmatch(n)]
    except OSError:
        return removed
    for name in names:
        candidate = os.path.join(directory, name)
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(candidate)
            removed.append(candidate)
        except OSError:
            pass  # a live save holds it, or it is not ours to remove
        finally:
            os.close(fd)
    return removed


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by ``save``; never executes code.

    Returns the saved dict (a saved Layer comes back as its state_dict, a dict of arrays).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for
    anything that is not an intact handgrad checkpoint (truncated, corrupt, pickled data).
    """
    path = _check_path("handgrad.load", path)
    remove_stale_temporaries(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"handgrad.load: no checkpoint at {path}")

    def bad(what: str) -> ValueError:
        return ValueError(f"handgrad.load: {path} is not a valid handgrad checkpoint ({what})")

    if os.path.isdir(path):
        raise bad("it is a directory; pass the checkpoint file inside it, e.g. "
                  f"{os.path.join(path, 'last.npz')}")

    with open(path, "rb") as file:
        head = file.read(4)
    if head != b"PK\x03\x04":
        what = "the file is empty" if not head else f"it starts with {head!r}"
        raise bad(f"expected an .npz (zip) archive, but {what}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if _META_KEY not in names:
                raise bad(f"no {_META_KEY!r} metadata member; not written by handgrad.save")
            arrays = {name: archive[name] for name in names}
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise bad(f"member {name!r} is not a .npy array")
    except ValueError as err:
        if str(err).startswith("handgrad.load"):
            raise
        if "pickle" in str(err).lower():
            raise bad("it contains pickled data, which is never loaded because unpickling "
                      "can execute code") from err
        raise bad(f"corrupt or truncated: {err}") from err
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise bad(f"corrupt or truncated: {type(err).__name__}: {err}") from err
    meta_array = arrays.pop(_META_KEY)
    if meta_array.dtype != np.uint8 or meta_array.ndim != 1:
        raise bad(f"the {_META_KEY!r} member holds {meta_array.dtype} data of shape "
                  f"{meta_array.shape}, expected the bytes of a JSON document (uint8, 1-D)")
    try:
        meta = json.loads(meta_array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"unreadable metadata: {err}") from err
    except RecursionError:
        raise bad("the metadata is nested too deeply") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise bad("the metadata does not name the handgrad checkpoint format")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise bad(f"format version {version!r}; this handgrad reads versions up to "
                  f"{FORMAT_VERSION}")
    if "root" not in meta:
        raise bad("the metadata has no 'root' entry")
    try:
        root = _Decoder(path, arrays).decode(meta["root"])
    except RecursionError:
        raise bad("the metadata is nested too deeply") from None
    if not isinstance(root, dict):
        raise bad(f"its root is a {type(root).__name__}, handgrad.save always writes a dict")
    return root


def load_into(model: Layer, path: str | os.PathLike, strict: bool = True, key: str = "model"):
    """Load the weights in ``path`` into ``model``.

    The checkpoint may be a saved Layer (a state_dict) or a dict holding one under ``key``
    (``{"model": ..., "optimizer": ...}``). A checkpoint for a different architecture raises
    ``ValueError`` naming the file and every missing, unexpected or wrongly shaped entry.
    Returns the whole loaded checkpoint.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"handgrad.load_into: expected a Layer (the model to load into), got "
                        f"{type(model).__name__}")
    checkpoint = load(path)
    state = checkpoint
    if key in checkpoint and isinstance(checkpoint[key], Mapping):
        state = checkpoint[key]
    try:
        model.load_state_dict(state, strict=strict)
    except ValueError as err:
        raise ValueError(f"handgrad.load_into: the checkpoint {os.fspath(path)} does not fit "
                         f"{type(model).__name__}: {err}") from err
    return checkpoint
