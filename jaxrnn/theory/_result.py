"""`TheoryResult`, the one result type of every reduced theory, and its constructor (a leaf module)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..observables import learning_time

__all__ = ["TheoryResult", "make_result"]


@dataclasses.dataclass
class TheoryResult:
    """Observables of a reduced theory, with the trainer's names and meanings.

    Arrays carry the grid's batch shape first and the save-time axis last.

    **Fields:**
    - `t`: save times (flow time), shape (T,).
    - `loss`: population loss L(t), shape (..., T).
    - `outlier`: complex eigenvalue of W of largest real part (oscillator: the upper member of the rightmost
      conjugate pair), shape (..., T).
    - `t_learn`: first time L < 1e-2 L(0), log-interpolated (`jaxrnn.observables.learning_time`), shape (...).
    - `ok`: per-cell solver status (True = the solve reached t1 within its step budget), shape (...).
      A cell with `ok = False` has NaN from the failure on; never use its numbers as if they were right.
    - `method`: which reduction produced it ("8ode", "5ode", "krylov", "fock").
    - `extra`: further per-cell arrays (reduced state, lambda_+-, residues, charge, num_steps, ...).
    """

    t: np.ndarray
    loss: np.ndarray
    outlier: np.ndarray
    t_learn: np.ndarray
    ok: np.ndarray
    method: str
    extra: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in ("t", "loss", "outlier", "t_learn", "ok", "method"):
            return getattr(self, key)
        return self.extra[key]

    def keys(self):
        return ["t", "loss", "outlier", "t_learn", "ok", "method", *self.extra]


def make_result(ts, out: dict, method: str, threshold: float) -> TheoryResult:
    """A `TheoryResult` from a dict with `loss`, `outlier`, `ok` and extras (numpy arrays, batch first)."""
    t = np.asarray(ts)
    out = dict(out)
    loss = np.asarray(out.pop("loss"))
    return TheoryResult(
        t=t,
        loss=loss,
        outlier=np.asarray(out.pop("outlier")),
        t_learn=learning_time(t, loss, threshold=threshold),
        ok=np.asarray(out.pop("ok")),
        method=method,
        extra=out,
    )
