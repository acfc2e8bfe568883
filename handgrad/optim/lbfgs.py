"""L-BFGS with an optional strong-Wolfe line search (PyTorch's ``torch.optim.LBFGS``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from numbers import Integral
from typing import Any

import numpy as np

from ..parameter import Parameter
from ._checks import _check_nonnegative
from ._line_search import strong_wolfe
from .optimizer import Optimizer

_ARRAY_STATE = ("d", "prev_flat_grad")
_LIST_STATE = ("old_dirs", "old_stps")


class LBFGS(Optimizer):
    r"""Limited-memory BFGS (Nocedal), step for step as ``torch.optim.LBFGS``.

    One ``step(closure)`` runs up to ``max_iter`` iterations on the concatenation ``x``
    of all parameters, with ``g`` the concatenated gradients (zeros where a gradient is
    None) and ``closure()`` re-evaluating the loss and the gradients::

        d = -g                                       at the very first iteration
        otherwise, with y = g - g_prev, s = t * d:
            if y . s > 1e-10: remember (y, s, rho = 1 / (y . s)) (the last history_size),
                              H_diag = (y . s) / (y . y)
            d = two-loop recursion: q = -g;  for i newest..oldest: a_i = rho_i s_i . q,
                q = q - a_i y_i;  r = H_diag q;  for i oldest..newest:
                r = r + (a_i - rho_i y_i . r) s_i;  d = r
        t = min(1, 1 / sum|g|) * lr at the very first iteration, else lr
        stop if g . d > -tolerance_change
        line_search_fn None: x = x + t d, then re-evaluate (except at the last iteration)
        'strong_wolfe': t from a line search satisfying the strong Wolfe conditions
                        (c1 = 1e-4, c2 = 0.9, cubic interpolation), x = x + t d
        stop when max_iter iterations or max_eval evaluations are done, when
        max|g| <= tolerance_grad, max|t d| <= tolerance_change or the loss changed by
        less than tolerance_change

    Args:
        params: the Parameters (one group only: LBFGS has no per-group options).
        lr: step length scale (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient element is this small (1e-7).
        tolerance_change: stop when the loss or the step changes less (1e-9).
        history_size: number of (y, s) pairs kept (default 100).
        line_search_fn: None or ``'strong_wolfe'``.

    ``step(closure)`` needs the closure: it zeroes the gradients, runs the forward and
    backward passes and returns the loss (a float, or anything ``float()`` takes);
    ``step`` returns the loss of its first evaluation.

    State (as in torch, kept under the first parameter): ``func_evals``, ``n_iter``,
    ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``,
    ``prev_loss``, ``al``; the vectors are flat arrays in the parameters' dtype.
    Memory: ``2 * history_size + 3`` vectors of the size of all parameters.
    """

    _state_keys = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
                   "prev_flat_grad", "prev_loss", "al")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1,
                 max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        if isinstance(max_iter, Integral) and not isinstance(max_iter, bool) and max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: doesn't support per-parameter options (parameter "
                             f"groups): got {len(self.param_groups)} groups, expected one")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("LBFGS: doesn't support per-parameter options (parameter "
                             "groups); add_param_group is not available")
        super().add_param_group(param_group)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key, low in (("max_iter", 1), ("max_eval", 1), ("history_size", 1)):
            value = group[key]
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f"LBFGS: invalid {key}={value!r} (expected an integer "
                                 f">= {low})")
        _check_nonnegative("LBFGS", group, "tolerance_grad", "tolerance")
        _check_nonnegative("LBFGS", group, "tolerance_change", "tolerance")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: invalid line_search_fn={group['line_search_fn']!r} "
                             "(expected None or 'strong_wolfe')")

    # ------------------------------------------------------------ flat vectors
    def _gather_flat_grad(self) -> np.ndarray:
        self._check_grads()
        return np.concatenate([np.zeros(p.data.size, p.data.dtype) if p.grad is None
                               else p.grad.ravel() for p in self._params])

    def _add_grad(self, step_size: float, update: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            n = p.data.size
            p.data += step_size * update[offset:offset + n].reshape(p.data.shape)
            offset += n

    def _clone_param(self) -> list[np.ndarray]:
        return [p.data.copy() for p in self._params]

    def _set_param(self, values: list[np.ndarray]) -> None:
        for p, value in zip(self._params, values):
            np.copyto(p.data, value)

    def _directional_evaluate(self, closure: Callable[[], Any], x: list[np.ndarray],
                              t: float, d: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and flat gradient at x + t d (the parameters are put back to x)."""
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # -------------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # noqa: C901
        """Run up to ``max_iter`` L-BFGS iterations; returns the first evaluation's loss."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step: expected a closure that zeroes the gradients, "
                            "runs forward and backward and returns the loss, got "
                            f"{type(closure).__name__}")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        history_size = group["history_size"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            # the descent direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q -= al[i] * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                np.copyto(prev_flat_grad, flat_grad)
            prev_loss = loss

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:  # no re-evaluation after the last iteration
                    loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # the stopping conditions
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """As the base's, with the history lists copied too and NumPy scalars (``t``,
        ``H_diag``, ``ro``, ``al`` of float32 parameters) as Python floats, so that only
        arrays and JSON-able values remain (float32 values convert exactly)."""
        saved = super().state_dict()
        saved["state"] = _plain(copy.deepcopy(saved["state"]))
        return saved

    def _load_param_state(self, p: Parameter, key: Any, values: dict) -> dict[str, Any]:
        unknown = set(values) - set(self._state_keys)
        if unknown:
            raise ValueError(f"LBFGS.load_state_dict: unknown state {sorted(unknown)}; "
                             f"expected keys among {list(self._state_keys)}")
        n = sum(q.data.size for q in self._params)
        dtype = np.result_type(*(q.data.dtype for q in self._params))

        def vector(name: str, value: Any) -> np.ndarray:
            array = np.array(value, dtype=dtype, copy=True)
            if array.shape != (n,):
                raise ValueError(f"LBFGS.load_state_dict: state {name!r} has shape "
                                 f"{array.shape}, expected ({n},) (all parameters, flat)")
            return array

        restored: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                restored[name] = None
            elif name in _ARRAY_STATE:
                restored[name] = vector(name, value)
            elif name in _LIST_STATE:
                restored[name] = [vector(name, v) for v in value]
            elif name in ("ro", "al"):
                restored[name] = [None if v is None else float(v) for v in value]
            elif name in ("func_evals", "n_iter"):
                restored[name] = int(value)
            else:
                restored[name] = float(value)
        return restored


def _plain(value: Any) -> Any:
    """``value`` with every NumPy scalar, also inside dicts and lists, as a Python number."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
