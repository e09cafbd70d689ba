"""Results as data: a `TrainResult` in the store's names and layout (jaxrnn/variables.py), as plain
arrays for the sweep engine or as an xarray Dataset for a user, so that a population trained in Python
and a cell of a sweep store hold the same variables with the same names, dims and units."""

from __future__ import annotations

import numpy as np

from .variables import COORDINATES, NETWORK_VARIABLES

__all__ = ["network_arrays", "train_result_to_xarray"]

# TrainResult fields stored under the same name (per network, then their own dims)
_DIRECT = (
    "loss",
    "outlier",
    "dW_op",
    "charge_drift",
    "uv",
    "t_learn",
    "t_learn_eigenvalue",
    "steps_to_learn",
    "status",
    "diverged_step",
)


def network_arrays(res, sigma=None, spectrum_index=None) -> dict[str, np.ndarray]:
    """Per-network arrays of a `TrainResult` under the store's variable names, network axis first.

    `sigma` (per network, shape (M,) or scalar) adds `dW_op_over_sigma` = |W(t_end) - W0|_op / sigma (NaN
    at sigma = 0, where it is undefined). `spectrum_index` (log-point indices) adds `spectrum` from the
    result's eigenvalues at those log points.
    """
    out = {name: np.asarray(getattr(res, name)) for name in _DIRECT}
    out["status"] = out["status"].astype(np.int8)
    # -1 where the outlier was not tracked (compute_spectra=False): the flag is data, never a default True
    sep = res.outlier_separated
    out["outlier_separated"] = (
        np.full(out["loss"].shape, -1, np.int8) if sep is None else np.asarray(sep).astype(np.int8)
    )
    out["diverged_step"] = out["diverged_step"].astype(np.int64)
    if sigma is not None:
        sig = np.broadcast_to(np.asarray(sigma, dtype=float), out["t_learn"].shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["dW_op_over_sigma"] = np.where(sig > 0, out["dW_op"][:, -1] / sig, np.nan)
    if spectrum_index is not None and res.eigenvalues is not None:
        out["spectrum"] = np.asarray(res.eigenvalues)[:, np.asarray(spectrum_index, dtype=np.int64), :]
    unknown = set(out) - set(NETWORK_VARIABLES)
    assert not unknown, unknown  # one definition: every name here is a store variable
    return out


def train_result_to_xarray(res, sigma=None):
    """The `TrainResult` as an xarray Dataset: dims (network, t[, t_spectrum, eig]), the store's names,
    `long_name` and `units` on every variable and coordinate, `step` beside `t`."""
    import xarray as xr

    spectrum_index = None
    if res.eigenvalues is not None:
        spectrum_index = np.arange(np.asarray(res.eigenvalues).shape[1])
    arrays = network_arrays(res, sigma=sigma, spectrum_index=spectrum_index)
    data = {}
    for name, val in arrays.items():
        var = NETWORK_VARIABLES[name]
        data[name] = xr.Variable(("network",) + var.dims, val, attrs=var.attrs)
    coords = {
        "network": xr.Variable(
            ("network",),
            np.arange(len(arrays["t_learn"])),
            attrs={"long_name": "network index", "units": "1"},
        ),
        "t": xr.Variable(("t",), np.asarray(res.t), attrs=COORDINATES["t"].attrs),
        "step": xr.Variable(("t",), np.asarray(res.step), attrs=COORDINATES["step"].attrs),
    }
    if spectrum_index is not None:
        coords["t_spectrum"] = xr.Variable(
            ("t_spectrum",), np.asarray(res.t), attrs=COORDINATES["t_spectrum"].attrs
        )
        coords["eig"] = xr.Variable(
            ("eig",), np.arange(np.asarray(res.eigenvalues).shape[-1]), attrs=COORDINATES["eig"].attrs
        )
    return xr.Dataset(data, coords=coords, attrs={"Conventions": "CF-1.10", "source": "jaxrnn.train"})
