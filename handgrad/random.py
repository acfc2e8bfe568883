"""The default random generator, used by layers when no generator is passed.

Every random draw in handgrad takes an explicit ``numpy.random.Generator``; when a layer is
given none it takes one from here. ``manual_seed(n)`` makes those draws reproducible.
"""

from __future__ import annotations

import numpy as np

_default = np.random.default_rng()


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
