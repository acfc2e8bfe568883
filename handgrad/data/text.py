"""Text for character-level language models: a vocabulary, corpora, truncated-BPTT batches.

* ``CharVocab``: characters <-> integer ids (saved as JSON, never pickled).
* ``load_text(path)``: a local UTF-8 text file the user names.
* ``python_stdlib_corpus(max_chars)``: the Python standard library's own ``.py`` sources,
  read from this machine's disk at run time (always available offline, never downloaded).
* ``BPTTBatches(ids, batch_size, seq_len)``: a long id stream cut into ``batch_size``
  contiguous streams and walked in chunks of ``seq_len``, so that the final state of one
  chunk is the right initial state of the next (truncated BPTT).
"""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["CharVocab", "load_text", "python_stdlib_corpus", "BPTTBatches"]


class CharVocab:
    """The sorted set of characters of a text, with ``encode``/``decode``.

    Args:
        chars: the characters (any iterable of single characters, duplicates allowed).

    ``CharVocab.from_text(text)`` builds one from a text; ``len(vocab)`` is its size;
    ``vocab.chars`` the characters in id order. ``save(path)``/``CharVocab.load(path)``
    write/read JSON.
    """

    def __init__(self, chars: Iterable[str]):
        if not hasattr(chars, "__iter__"):
            raise TypeError(f"CharVocab: expected a string or an iterable of characters, got "
                            f"{type(chars).__name__}")
        unique = sorted(set(chars))
        if not unique:
            raise ValueError("CharVocab: expected at least one character, got none")
        bad = [c for c in unique if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"CharVocab: expected single characters, got {bad[0]!r}")
        self.chars: list[str] = unique
        self.stoi = {c: i for i, c in enumerate(unique)}
        self._codes = np.array([ord(c) for c in unique], dtype=np.uint32)  # sorted

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def encode(self, text: str) -> NDArray:
        """The ids of ``text`` as an int64 array; an unknown character raises ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.encode: expected a str, got {type(text).__name__}")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)
        ids = np.minimum(ids, len(self) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            position = int(np.argmax(unknown))
            raise ValueError(
                f"CharVocab.encode: character {text[position]!r} at position {position} is "
                f"not in the vocabulary ({len(self)} characters)"
            )
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (an id outside ``[0, len)`` raises ValueError)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = int(ids[(ids < 0) | (ids >= len(self))][0])
            raise ValueError(f"CharVocab.decode: id {bad} is out of range [0, {len(self)})")
        return "".join(self.chars[i] for i in ids.tolist())

    def to_dict(self) -> dict:
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> CharVocab:
        if not isinstance(d, dict) or not isinstance(d.get("chars"), str):
            raise ValueError("CharVocab.from_dict: expected a dict with a 'chars' string")
        return cls(d["chars"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically: a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def load_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The contents of a local text file.

    Raises ``FileNotFoundError`` when it does not exist, ``ValueError`` when it is empty or
    not valid ``encoding`` (UTF-8 by default).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_text: no such file: {str(path)!r}")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"load_text: {str(path)!r} is empty")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"load_text: {str(path)!r} is not valid {encoding} (byte {err.start}); pass "
            f"encoding=... if it is another encoding"
        ) from None


def _stdlib_files(root: Path) -> list[Path]:
    skip = {"site-packages", "dist-packages", "__pycache__"}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def python_stdlib_corpus(max_chars: int = 1_000_000, root: str | os.PathLike | None = None) -> str:
    """Source text of the Python standard library on this machine, for language models.

    The ``.py`` files under ``root`` (default: the running interpreter's stdlib directory,
    without ``site-packages``), in sorted path order, joined with blank lines, read until
    ``max_chars`` characters. Deterministic for a given Python installation; nothing is
    downloaded. Files that are not UTF-8 are skipped.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0:
        raise ValueError(f"python_stdlib_corpus: expected a positive integer max_chars, "
                         f"got {max_chars!r}")
    base = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    if not base.is_dir():
        raise FileNotFoundError(
            f"python_stdlib_corpus: the standard library directory {str(base)!r} does not "
            f"exist; use load_text(path) with a text file instead"
        )
    pieces, total = [], 0
    for path in _stdlib_files(base):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        pieces.append(text)
        total += len(text) + 2
        if total >= max_chars:
            break
    if not pieces:
        raise FileNotFoundError(
            f"python_stdlib_corpus: no readable .py files under {str(base)!r}; use "
            f"load_text(path) with a text file instead"
        )
    return "\n\n".join(pieces)[:max_chars]


class BPTTBatches:
    """Chunks of a long id stream for truncated BPTT.

    The stream is cut into ``batch_size`` equal contiguous pieces, one per batch row, and
    each iteration yields the next ``seq_len`` ids of every row with the ids that follow
    them (the targets). Consecutive chunks continue each row, so the model's final state
    after one chunk is the initial state for the next. The last chunk may be shorter.

    Args:
        ids: 1-D integer array (e.g. ``vocab.encode(text)``).
        batch_size: number of parallel streams N.
        seq_len: chunk length T.

    Shape: each item is ``(inputs, targets)``, both ``(N, T)`` int64 (T smaller at the end).
    """

    def __init__(self, ids: NDArray, batch_size: int, seq_len: int):
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"BPTTBatches: expected a 1-D integer array of ids, got shape "
                             f"{ids.shape} and dtype {ids.dtype}")
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"BPTTBatches: expected a positive integer {name}, "
                                 f"got {value!r}")
        per_row = (ids.size - 1) // batch_size
        if per_row < 1:
            raise ValueError(f"BPTTBatches: {ids.size} ids are too few for batch_size "
                             f"{batch_size} (need at least batch_size + 1)")
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        self.inputs = ids[:per_row * batch_size].astype(np.int64).reshape(batch_size, per_row)
        self.targets = ids[1:per_row * batch_size + 1].astype(np.int64).reshape(batch_size,
                                                                               per_row)

    def __len__(self) -> int:
        return -(-self.inputs.shape[1] // self.seq_len)

    def __iter__(self) -> Iterator[tuple[NDArray, NDArray]]:
        for start in range(0, self.inputs.shape[1], self.seq_len):
            stop = start + self.seq_len
            yield self.inputs[:, start:stop], self.targets[:, start:stop]
