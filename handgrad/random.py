"""The default random generator, used by layers when no generator is passed.

Every random draw in handgrad takes an explicit ``numpy.random.Generator``; when a layer is
given none it takes one from here. ``manual_seed(n)`` makes those draws reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

_default = np.random.default_rng()
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the default generator (used by layers created without ``rng``) and return it."""
    global _default
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer seed, got {seed!r}")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator() -> np.random.Generator:
    """The generator layers draw from when they are given none."""
    return _default


def resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself, a new generator for an integer seed, or the default generator."""
    if rng is None:
        return _default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"expected a numpy.random.Generator, an integer seed or None for rng, "
        f"got {type(rng).__name__}"
    )


def spawn_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A generator a layer can own: ``rng`` if given, else a child of the default generator."""
    if rng is None:
        return np.random.default_rng(_default.integers(0, 2**63 - 1))
    return resolve_rng(rng)


# ---------------------------------------------------------------------- generator state
# (saved in checkpoints and by the DataLoader: JSON-able, every integer as a string)
def _jsonable_state(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable_state(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_jsonable_state(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable_state(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return value


def _restore_state(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _restore_state(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_restore_state(v) for v in value]
        if items and all(isinstance(v, int) for v in items):
            return np.asarray(items, dtype=np.uint64 if max(items) >= 2**63 else np.int64)
        return items
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def rng_state(generator: np.random.Generator) -> dict:
    """The state of ``generator`` as JSON-able data (every integer written as a string).

    PCG64's 128-bit state does not fit JSON numbers read by most tools, hence the strings.
    Restore with ``set_rng_state(generator, state)`` or ``generator_from_state(state)``.
    """
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"rng_state: expected a numpy.random.Generator, got "
                        f"{type(generator).__name__}")
    return _jsonable_state(generator.bit_generator.state)


def set_rng_state(generator: np.random.Generator, state: Mapping) -> np.random.Generator:
    """Put ``generator`` into ``state`` (from ``rng_state``, or a raw bit_generator.state)."""
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"set_rng_state: expected a numpy.random.Generator, got "
                        f"{type(generator).__name__}")
    state = _restore_state(dict(state))
    name = type(generator.bit_generator).__name__
    if state.get("bit_generator") != name:
        raise ValueError(
            f"set_rng_state: the state is for bit generator {state.get('bit_generator')!r}, "
            f"but the generator uses {name!r}"
        )
    generator.bit_generator.state = state
    return generator


def generator_from_state(state: Mapping) -> np.random.Generator:
    """A new ``numpy.random.Generator`` in ``state`` (from ``rng_state``)."""
    name = dict(state).get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"generator_from_state: unknown bit generator {name!r}; expected one "
                         f"of {', '.join(_BIT_GENERATORS)}")
    generator = np.random.Generator(getattr(np.random, name)())
    return set_rng_state(generator, state)
