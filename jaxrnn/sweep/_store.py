"""The results store: a zarr (v3) group that `xarray.open_zarr` reads as one Dataset.

Layout (docs/sweep.md):
- dims: N, sigma, c, w, eta, optimizer (the grid axes), seed, t (log times), t_spectrum, eig.
- every per-network variable is chunked one cell per zarr chunk (1 along each grid axis, whole along
  seed/t/eig), so a chunk of work overwrites whole zarr chunks (no read-modify-write) and two hosts
  working on disjoint cells never touch the same file. LocalStore writes each file atomically.
- `done` (grid axes, bool): written after a cell's data. A killed run leaves data without `done`;
  the rerun recomputes and overwrites exactly those cells.
- attributes: provenance (CF/ACDD names) plus `jaxrnn_config` (JSON) and `config_hash`.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

from ..status import STATUS_NOT_RUN, flag_attrs
from ._spec import AXES, SweepSpec

__all__ = ["StoreMismatch", "open_store", "create_store", "provenance", "NET_VARS", "STATUS_NOT_RUN"]

log = logging.getLogger(__name__)

NET = AXES + ("seed",)

# name -> (extra dims after the network dims, kind, attrs)
NET_VARS = {
    "loss": (("t",), "real", dict(long_name="population loss L(t)")),
    "outlier": (("t",), "complex", dict(long_name="outlier eigenvalue of W (largest real part)")),
    "dW_op": (("t",), "real", dict(long_name="|W(t) - W0|_op")),
    "charge_drift": (("t",), "real", dict(long_name="relative drift of the conserved charge C")),
    "uv": (("t",), "real", dict(long_name="u.v / N")),
    "t_learn": ((), "real", dict(long_name="first time L < 1e-2 L(0) (log-interpolated)")),
    "t_learn_eigenvalue": ((), "real", dict(long_name="first time the outlier is within 1% of 1 - s*")),
    "steps_to_learn": ((), "real", dict(long_name="t_learn in optimiser steps")),
    "dW_op_over_sigma": ((), "real", dict(long_name="|W(t_end) - W0|_op / sigma (rich >~ 1, lazy << 1)")),
    "status": ((), "status", dict(long_name="network status", **flag_attrs())),
    "diverged_step": ((), "int", dict(long_name="step at which the network was frozen (-1: never)")),
    "spectrum": (("t_spectrum", "eig"), "complex", dict(long_name="eigenvalues of W at t_spectrum (NaN-padded to max N)")),
    "theory_loss": (("t",), "real", dict(long_name="sigma=0 theory from this network's initial condition", source="theory")),
    "theory_outlier": (("t",), "complex", dict(long_name="sigma=0 theory outlier, this network's initial condition", source="theory")),
    "theory_t_learn": ((), "real", dict(long_name="sigma=0 theory t_learn, this network's initial condition", source="theory")),
}
INF_VARS = {
    "theory_inf_loss": (("t",), "real", dict(long_name="N -> inf sigma = 0 theory: loss", source="theory")),
    "theory_inf_outlier": (("t",), "complex", dict(long_name="N -> inf sigma = 0 theory: outlier", source="theory")),
    "theory_inf_t_learn": ((), "real", dict(long_name="N -> inf sigma = 0 theory: t_learn", source="theory")),
}
INF_DIMS = ("c", "w", "eta")


class StoreMismatch(RuntimeError):
    """The store at this path was written by a different config (hash); one line for the CLI."""


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance(spec: SweepSpec) -> dict:
    """CF-1.10 / ACDD-1.3 global attributes plus the config and the environment."""
    import jax

    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("jaxrnn", "jax", "jaxlib", "equinox", "optax", "diffrax", "numpy", "xarray", "zarr"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "missing"
    devs = jax.devices()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": f"jaxrnn sweep {spec.name}",
        "summary": spec.description or f"Linear RNN training sweep {spec.name}",
        "source": f"jaxrnn {versions['jaxrnn']} sweep engine",
        "history": f"{now} created by jaxrnn run {spec.source}",
        "date_created": now,
        "creator_name": "jaxrnn",
        "references": "THEORY.md; docs/sweep.md",
        "product_version": versions["jaxrnn"],
        "jaxrnn_config": spec.to_json(),
        "config_hash": spec.config_hash,
        "software_versions": json.dumps(versions),
        "git_commit": _git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device_kind": devs[0].device_kind,
        "device_count": len(devs),
        "process_count": jax.process_count(),
        "dtype": spec.train.dtype,
    }


def _open_group(path, mode):
    import zarr

    return zarr.open_group(str(path), mode=mode, zarr_format=3)


def _complex_dtype(spec):
    return "complex64" if spec.train.dtype == "float32" else "complex128"


def _create_array(g, name, shape, chunks, dtype, fill, dims, attrs=None):
    a = g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, dimension_names=list(dims))
    if attrs:
        a.attrs.update(attrs)
    return a


def create_store(path, spec: SweepSpec, theory_inf: dict | None = None):
    """Create an empty store with coordinates, fill values and provenance; `ready` is set last."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = _open_group(path, "w")
    grid = spec.grid
    t = spec.log_times()
    si = spec.spectra_indices()
    sizes = {a: len(grid.axis(a)) for a in AXES} | {"seed": len(grid.seed), "t": len(t), "t_spectrum": len(si), "eig": max(grid.N)}
    real = spec.train.dtype
    cplx = _complex_dtype(spec)
    # coordinates
    coords = {a: np.asarray(grid.axis(a)) for a in AXES if a != "optimizer"}
    coords["seed"] = np.asarray(grid.seed, dtype=np.int64)
    coords["t"] = t
    coords["t_spectrum"] = t[si] if len(si) else np.zeros(0)
    coords["eig"] = np.arange(sizes["eig"])
    units = {"t": "flow time (unit: the network's time constant)" if spec.is_flow else "optimiser steps"}
    for name, val in coords.items():
        a = _create_array(g, name, val.shape, max(1, val.shape[0]), val.dtype, 0, (name,), {"units": units[name]} if name in units else None)
        if val.size:
            a[:] = val
    o = g.create_array("optimizer", shape=(sizes["optimizer"],), chunks=(sizes["optimizer"],), dtype=str, dimension_names=["optimizer"])
    o[:] = np.array(grid.optimizer, dtype=object)
    st = _create_array(g, "step", (len(t),), (len(t),), "int64", 0, ("t",))
    st[:] = spec.log_steps()
    # per-network variables, one zarr chunk per cell
    for name, (extra, kind, attrs) in NET_VARS.items():
        if name.startswith("theory_") and spec.theory.overlay == "none":
            continue
        if name == "spectrum" and not len(si):
            continue
        dims = NET + extra
        shape = tuple(sizes[d] for d in dims)
        chunks = tuple(1 if d in AXES else max(1, sizes[d]) for d in dims)
        dtype, fill = {"real": (real, np.nan), "complex": (cplx, complex(np.nan, np.nan)), "status": ("int8", STATUS_NOT_RUN), "int": ("int64", -1)}[kind]
        _create_array(g, name, shape, chunks, dtype, fill, dims, {**attrs, "coordinates": "step"} if "t" in extra else attrs)
    _create_array(g, "done", tuple(sizes[a] for a in AXES), (1,) * len(AXES), "bool", False, AXES, dict(long_name="cell finished and written"))
    if theory_inf:
        for name, (extra, kind, attrs) in INF_VARS.items():
            val = np.asarray(theory_inf[name])
            dims = INF_DIMS + extra
            dtype = real if kind == "real" else cplx
            a = _create_array(g, name, val.shape, val.shape, dtype, np.nan if kind == "real" else complex(np.nan, np.nan), dims, attrs)
            a[...] = val.astype(dtype)
    g.attrs.update(provenance(spec))
    g.attrs["jaxrnn_ready"] = True  # last: other hosts wait for it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import zarr

        zarr.consolidate_metadata(str(path))
    return g


def open_store(path, spec: SweepSpec, *, fresh: bool = False, create: bool = True, theory_inf=None, wait_s: float = 600.0):
    """Open the store for `spec`, creating it (process 0) or waiting for it (other processes).

    Raises `StoreMismatch` when the store holds another config and `fresh` is false.
    `theory_inf` is a callable returning the N -> inf theory variables (only called when creating).
    """
    path = Path(path)
    if create:
        if path.exists() and not fresh:
            try:
                g = _open_group(path, "r+")
                attrs = dict(g.attrs)
            except Exception:  # noqa: BLE001 - an unreadable store is treated as foreign
                attrs = {}
            if not attrs.get("jaxrnn_ready"):
                log.warning("store %s was never completed; recreating it", path)
            elif attrs.get("config_hash") != spec.config_hash:
                raise StoreMismatch(
                    f"store {path} holds config hash {attrs.get('config_hash')}, this config is {spec.config_hash}: "
                    "pass --fresh to discard it, or --out to write elsewhere"
                )
            else:
                return g
        return create_store(path, spec, theory_inf() if theory_inf else None)
    deadline = time.time() + wait_s
    while True:  # another process creates it
        try:
            g = _open_group(path, "r+")
            attrs = dict(g.attrs)
            if attrs.get("jaxrnn_ready") and attrs.get("config_hash") == spec.config_hash:
                return g
        except Exception:  # noqa: BLE001
            pass
        if time.time() > deadline:
            raise StoreMismatch(f"store {path} did not appear within {wait_s:.0f} s")
        time.sleep(0.2)


def done_mask(g) -> np.ndarray:
    return np.asarray(g["done"][...], dtype=bool)


def write_cells(g, spec: SweepSpec, cells: np.ndarray, data: dict):
    """Write per-network arrays for whole cells, then mark the cells done.

    `data[name]` has shape (len(cells), n_seeds, *extra) in the store's layout.
    """
    shape = spec.grid.shape
    arrays = {name: g[name] for name in data}
    idxs = [np.unravel_index(int(c), shape) for c in cells]
    for name, arr in arrays.items():
        val = np.asarray(data[name]).astype(arr.dtype, copy=False)
        for k, idx in enumerate(idxs):
            arr[tuple(int(i) for i in idx)] = val[k]
    done = g["done"]
    for idx in idxs:
        done[tuple(int(i) for i in idx)] = True


def open_dataset(path):
    """The store as an xarray Dataset (lazy)."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(str(path))
