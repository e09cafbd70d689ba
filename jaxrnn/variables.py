"""One definition of every observable and coordinate: name, dimensions, kind, units and long_name.

The trainer's `TrainResult`, the theory's `TheoryResult`, the sweep store and the figures all take
their names and metadata from here (CF-1.10 attributes; times are dimensionless, in units of the
network's time constant, so their CF `units` is "1" with the meaning in `long_name`).
"""

from __future__ import annotations

import dataclasses

from .status import flag_attrs

__all__ = ["Variable", "COORDINATES", "NETWORK_VARIABLES", "THEORY_INF_VARIABLES", "GRID_AXES"]

GRID_AXES = ("N", "sigma", "c", "w", "eta", "optimizer")


@dataclasses.dataclass(frozen=True)
class Variable:
    """`dims`: dimensions after the network's (grid axes and seed); `kind`: real | complex | status |
    int | int8; `attrs`: CF attributes (long_name, units, flags)."""

    dims: tuple[str, ...]
    kind: str
    long_name: str
    units: str = "1"
    extra: tuple = ()  # further (key, value) CF attributes

    @property
    def attrs(self) -> dict:
        return {"long_name": self.long_name, "units": self.units, **dict(self.extra)}


COORDINATES = {
    "N": Variable(("N",), "int", "network size (number of units)"),
    "sigma": Variable(("sigma",), "real", "initial recurrent weight scale sigma (W0 = sigma Z / sqrt(N))"),
    "c": Variable(("c",), "real", "target decay rate c (per network time constant)"),
    "w": Variable(("w",), "real", "target angular frequency w (radians per network time constant)"),
    "eta": Variable(("eta",), "real", "learning rate eta"),
    "optimizer": Variable(("optimizer",), "str", "training method"),
    "seed": Variable(("seed",), "int", "random seed of the initial weights"),
    "t": Variable(
        ("t",),
        "real",
        "flow time of the log points (network time constants; optimiser steps for step-based methods)",
    ),
    "step": Variable(("t",), "int", "optimiser step of the log points"),
    "t_spectrum": Variable(
        ("t_spectrum",), "real", "flow time of the stored spectra (network time constants)"
    ),
    "eig": Variable(("eig",), "int", "eigenvalue index (NaN-padded to the largest N)"),
}

_THEORY = (("source", "theory"),)
NETWORK_VARIABLES = {
    "loss": Variable(("t",), "real", "population loss L(t) (exact loss the training objective estimates)"),
    "outlier": Variable(
        ("t",), "complex", "outlier eigenvalue of W (largest real part; oscillator: upper member of the pair)"
    ),
    "outlier_separated": Variable(
        ("t",),
        "int8",
        "the tracked outlier is outside the bulk and converged (0: it may be the bulk's edge)",
        extra=(("flag_values", [-1, 0, 1]), ("flag_meanings", "not_tracked not_separated separated")),
    ),
    "dW_op": Variable(("t",), "real", "operator norm |W(t) - W0|_op"),
    "charge_drift": Variable(("t",), "real", "relative drift of the conserved charge C"),
    "uv": Variable(("t",), "real", "overlap u.v / N"),
    "t_learn": Variable(
        (), "real", "learning time: first time L < 1e-2 L(0), log-interpolated (network time constants)"
    ),
    "t_learn_eigenvalue": Variable(
        (), "real", "first time the outlier is within 1% of its target 1 - s* (network time constants)"
    ),
    "steps_to_learn": Variable((), "real", "learning time in optimiser steps"),
    "dW_op_over_sigma": Variable((), "real", "|W(t_end) - W0|_op / sigma (rich >~ 1, lazy << 1)"),
    "status": Variable((), "status", "network status", extra=tuple(flag_attrs().items())),
    "diverged_step": Variable((), "int", "step at which the network was frozen (-1: never)"),
    "spectrum": Variable(
        ("t_spectrum", "eig"), "complex", "eigenvalues of W at t_spectrum (NaN-padded to the largest N)"
    ),
    "theory_loss": Variable(
        ("t",), "real", "sigma = 0 theory from this network's initial condition: loss", extra=_THEORY
    ),
    "theory_outlier": Variable(
        ("t",), "complex", "sigma = 0 theory from this network's initial condition: outlier", extra=_THEORY
    ),
    "theory_t_learn": Variable(
        (), "real", "sigma = 0 theory from this network's initial condition: t_learn", extra=_THEORY
    ),
    "theory_ok": Variable(
        (),
        "int8",
        "sigma = 0 theory solve succeeded",
        extra=(("flag_values", [-1, 0, 1]), ("flag_meanings", "not_applicable failed ok"), *_THEORY),
    ),
}
THEORY_INF_VARIABLES = {  # dims (c, w, eta) + these
    "theory_inf_loss": Variable(("t",), "real", "N -> inf sigma = 0 theory: loss", extra=_THEORY),
    "theory_inf_outlier": Variable(("t",), "complex", "N -> inf sigma = 0 theory: outlier", extra=_THEORY),
    "theory_inf_t_learn": Variable(
        (), "real", "N -> inf sigma = 0 theory: t_learn (network time constants)", extra=_THEORY
    ),
}
