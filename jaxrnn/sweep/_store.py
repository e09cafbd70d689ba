"""The results store: a zarr (v3) group that `xarray.open_zarr` reads as one Dataset.

Layout (docs/sweep.md):
- dims: N, sigma, c, w, eta, optimizer (the grid axes), seed, t (log times), t_spectrum, eig.
- every per-network variable is chunked one cell per zarr chunk (1 along each grid axis, whole along
  seed/t/eig), so a chunk of work overwrites whole zarr chunks (no read-modify-write) and two hosts
  working on disjoint cells never touch the same file. LocalStore writes each file atomically.
- `done` (grid axes, bool): written after a cell's data. A killed run leaves data without `done`;
  the rerun recomputes and overwrites exactly those cells.
- attributes: provenance (CF/ACDD names) plus `jaxrnn_config` (JSON) and `config_hash`.
- `cell_checksum` (grid axes, uint64): a hash of every per-network variable of the cell as stored,
  written with the data and before `done`; resume and `jaxrnn info --verify` recompute it, so a
  deleted or corrupted chunk is recomputed or reported, never read back as "done".

Safety: a jaxrnn store is a folder holding the marker file `.jaxrnn-store` (JSON: schema version,
store id, config hash), written before anything else. A path that exists and is not such a folder
(a file, or a folder of someone's notes) is never written into nor deleted; `--fresh` removes only a
marked store, and only the entries the store itself made.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import logging
import platform
import shutil
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from ..status import STATUS_NOT_RUN
from ..variables import COORDINATES, NETWORK_VARIABLES, THEORY_INF_VARIABLES
from ._spec import AXES, SweepSpec

__all__ = [
    "StoreError",
    "StoreMismatch",
    "open_store",
    "create_store",
    "remove_store",
    "check_store_path",
    "verify_cells",
    "open_dataset",
    "netcdf_safe",
    "provenance",
    "NET_VARS",
    "STATUS_NOT_RUN",
]

log = logging.getLogger(__name__)

NET = AXES + ("seed",)

# name -> (extra dims after the network dims, kind, attrs); defined once in jaxrnn/variables.py
NET_VARS = {k: (v.dims, v.kind, v.attrs) for k, v in NETWORK_VARIABLES.items()}
INF_VARS = {k: (v.dims, v.kind, v.attrs) for k, v in THEORY_INF_VARIABLES.items()}
INF_DIMS = ("c", "w", "eta")


MARKER = ".jaxrnn-store"
SCHEMA_VERSION = 3  # 2: marker file, cell checksums; 3: outlier_separated


class StoreError(RuntimeError):
    """A store path that cannot be used as it is (foreign folder, a file, unreadable, not writable); one line."""


class StoreMismatch(StoreError):
    """The store at this path was written by a different config (hash); one line for the CLI."""


def read_marker(path) -> dict | None:
    """The marker of a jaxrnn store at `path`, or None if `path` is not one."""
    f = Path(path) / MARKER
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == "jaxrnn-store" else None


def check_store_path(path, *, for_writing: bool = True) -> None:
    """Refuse, with one line, a path that is not ours to write: a file, a non-empty folder without the
    marker, or a location we cannot create or write. Called before any compute."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise StoreError(
                f"store path {path} exists and is not a folder: choose another --out or output.store"
            )
        if read_marker(path) is None and any(path.iterdir()):
            raise StoreError(
                f"store path {path} is a folder that is not a jaxrnn store (no {MARKER} marker); refusing to write "
                "into it or delete it: choose another --out or output.store"
            )
        target = path
    else:
        target = path.parent
        while not target.exists():
            if target.is_symlink() or target == target.parent:
                break
            target = target.parent
        if target.exists() and not target.is_dir():
            raise StoreError(f"cannot create store {path}: {target} is a file, not a folder")
    if for_writing and target.exists() and not os.access(target, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write store {path}: no write permission on {target}")


def remove_store(path) -> None:
    """Delete a jaxrnn store: only if it carries the marker, and only the entries the store made
    (its zarr metadata, its arrays and the marker). Anything else found inside is left and reported."""
    path = Path(path)
    marker = read_marker(path)
    if marker is None:
        raise StoreError(f"refusing to delete {path}: it is not a jaxrnn store (no {MARKER} marker)")
    ours = set(marker.get("entries", [])) | {MARKER, "zarr.json"}
    foreign = sorted(p.name for p in path.iterdir() if p.name not in ours)
    if foreign:
        raise StoreError(
            f"refusing to delete store {path}: it holds entries the store did not create ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); move them out first"
        )
    for p in path.iterdir():
        if p.name != MARKER:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    (path / MARKER).unlink()  # last: an interrupted removal still leaves a marked (ours) folder
    path.rmdir()


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            )
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
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": f"jaxrnn sweep {spec.name}",
        "summary": spec.description or f"Linear RNN training sweep {spec.name}",
        "source": f"jaxrnn {versions['jaxrnn']} sweep engine",
        "history": f"{now} created by jaxrnn run {spec.source}",
        "date_created": now,
        "creator_name": "jaxrnn",
        "references": "Bordelon, Cotler, Pehlevan, Zavatone-Veth, Dynamically Learning to Integrate in Recurrent Neural Networks; jaxrnn docs/concepts.md, docs/sweep.md",
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
    a = g.create_array(
        name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, dimension_names=list(dims)
    )
    if attrs:
        a.attrs.update(attrs)
    return a


def _entries(spec: SweepSpec) -> list[str]:
    """Every top-level name a store of `spec` may hold (a superset; `remove_store` deletes only these)."""
    return sorted(
        set(AXES)
        | {"seed", "t", "t_spectrum", "eig", "step", "done", "cell_checksum"}
        | set(NET_VARS)
        | set(INF_VARS)
    )


def create_store(path, spec: SweepSpec, theory_inf: dict | None = None, variables=None):
    """Create an empty store with coordinates, fill values and provenance; `ready` is set last.

    `path` must not exist, or be an empty folder, or be a jaxrnn store (which is removed first)."""
    path = Path(path)
    check_store_path(path)
    if read_marker(path) is not None:
        remove_store(path)
    path.mkdir(parents=True, exist_ok=True)
    store_id = uuid.uuid4().hex
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    marker = dict(
        format="jaxrnn-store",
        schema_version=SCHEMA_VERSION,
        store_id=store_id,
        config_hash=spec.config_hash,
        created=now,
        entries=_entries(spec),
    )
    (path / MARKER).write_text(json.dumps(marker, indent=1) + "\n")  # first: from here on the folder is ours
    g = _open_group(path, "a")
    grid = spec.grid
    t = spec.log_times()
    si = spec.spectra_indices()
    sizes = {a: len(grid.axis(a)) for a in AXES} | {
        "seed": len(grid.seed),
        "t": len(t),
        "t_spectrum": len(si),
        "eig": int(max(grid.N)) if len(si) else 0,
    }
    real = spec.train.dtype
    cplx = _complex_dtype(spec)
    # coordinates
    coords = {a: np.asarray(grid.axis(a)) for a in AXES if a != "optimizer"}
    coords["seed"] = np.asarray(grid.seed, dtype=np.int64)
    coords["t"] = t
    coords["t_spectrum"] = t[si] if len(si) else np.zeros(0)
    coords["eig"] = np.arange(sizes["eig"])
    for name, val in coords.items():
        a = _create_array(
            g, name, val.shape, max(1, val.shape[0]), val.dtype, 0, (name,), COORDINATES[name].attrs
        )
        if val.size:
            a[:] = val
    o = g.create_array(
        "optimizer",
        shape=(sizes["optimizer"],),
        chunks=(sizes["optimizer"],),
        dtype=str,
        dimension_names=["optimizer"],
    )
    o.attrs.update(COORDINATES["optimizer"].attrs)
    o[:] = np.array(grid.optimizer, dtype=object)
    st = _create_array(g, "step", (len(t),), (len(t),), "int64", 0, ("t",), COORDINATES["step"].attrs)
    st[:] = spec.log_steps()
    # per-network variables, one zarr chunk per cell
    for name, (extra, kind, attrs) in NET_VARS.items():
        if variables is not None and name not in variables:
            continue
        if name.startswith("theory_") and not spec.has_theory:
            continue
        if name == "spectrum" and not len(si):
            continue
        dims = NET + extra
        shape = tuple(sizes[d] for d in dims)
        chunks = tuple(1 if d in AXES else max(1, sizes[d]) for d in dims)
        dtype, fill = {
            "real": (real, np.nan),
            "complex": (cplx, complex(np.nan, np.nan)),
            "status": ("int8", STATUS_NOT_RUN),
            "int": ("int64", -1),
            "int8": ("int8", -1),
        }[kind]
        _create_array(
            g,
            name,
            shape,
            chunks,
            dtype,
            fill,
            dims,
            {**attrs, "coordinates": "step"} if "t" in extra else attrs,
        )
    _create_array(
        g,
        "cell_checksum",
        tuple(sizes[a] for a in AXES),
        (1,) * len(AXES),
        "uint64",
        0,
        AXES,
        dict(long_name="hash of the cell's stored per-network variables (integrity check)", units="1"),
    )
    _create_array(
        g,
        "done",
        tuple(sizes[a] for a in AXES),
        (1,) * len(AXES),
        "bool",
        False,
        AXES,
        dict(long_name="cell finished and written", units="1"),
    )
    if theory_inf:
        for name, (extra, kind, attrs) in INF_VARS.items():
            val = np.asarray(theory_inf[name])
            dims = INF_DIMS + extra
            dtype = real if kind == "real" else cplx
            a = _create_array(
                g,
                name,
                val.shape,
                val.shape,
                dtype,
                np.nan if kind == "real" else complex(np.nan, np.nan),
                dims,
                attrs,
            )
            a[...] = val.astype(dtype)
    g.attrs.update(provenance(spec))
    g.attrs["jaxrnn_store_id"] = store_id
    g.attrs["jaxrnn_schema_version"] = SCHEMA_VERSION
    g.attrs["jaxrnn_ready"] = True  # last: other hosts wait for it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import zarr

        zarr.consolidate_metadata(str(path))
    return g


def _read_attrs(path) -> dict:
    try:
        return dict(_open_group(path, "r").attrs)
    except Exception as e:  # noqa: BLE001 - zarr raises several kinds for damaged metadata
        raise StoreError(
            f"store {path} is a jaxrnn store whose metadata cannot be read ({type(e).__name__}: {e}); "
            "nothing was changed: pass --fresh to discard it and start again"
        ) from None


def open_store(
    path,
    spec: SweepSpec,
    *,
    fresh: bool = False,
    create: bool = True,
    theory_inf=None,
    wait_s: float = 600.0,
    store_id: str | None = None,
    variables=None,
):
    """Open the store for `spec`, creating it (process 0) or waiting for it (other processes).

    Raises `StoreError` for a path that is not ours (a file, a foreign folder) or a damaged store, and
    `StoreMismatch` when the store holds another config and `fresh` is false. `theory_inf` is a
    callable returning the N -> inf theory variables (only called when creating). Other processes wait
    for the store whose id is `store_id` (process 0's, shared through jax.distributed), so that with
    `fresh` they never open the old store that process 0 is about to replace.
    """
    path = Path(path)
    if create:
        check_store_path(path)
        marker = read_marker(path)
        if marker is not None and not fresh and not (path / "zarr.json").exists():
            # the marker is written first, the group next: creation died in between, nothing was computed
            log.info("store %s was never completed (creation interrupted); recreating it", path)
        elif marker is not None and not fresh:
            attrs = _read_attrs(path)
            if not attrs.get("jaxrnn_ready"):
                # creation was cut short before `ready`, i.e. before any cell was computed: nothing to lose
                log.info("store %s was never completed (creation interrupted); recreating it", path)
            elif attrs.get("jaxrnn_schema_version") != SCHEMA_VERSION:
                raise StoreError(
                    f"store {path} has schema version {attrs.get('jaxrnn_schema_version')}, this jaxrnn writes "
                    f"{SCHEMA_VERSION}: pass --fresh to recompute it, or --out to write elsewhere"
                )
            elif attrs.get("config_hash") != spec.config_hash:
                raise StoreMismatch(
                    f"store {path} holds config hash {attrs.get('config_hash')}, this config is {spec.config_hash}: "
                    "pass --fresh to discard it, or --out to write elsewhere"
                )
            else:
                return _open_group(path, "r+")
        return create_store(path, spec, theory_inf() if theory_inf else None, variables)
    deadline = time.time() + wait_s
    while True:  # another process creates it
        m = read_marker(path)
        if m is not None and (store_id is None or m.get("store_id") == store_id):
            try:
                g = _open_group(path, "r+")
                attrs = dict(g.attrs)
                if attrs.get("jaxrnn_ready") and attrs.get("config_hash") == spec.config_hash:
                    return g
            except Exception:  # noqa: BLE001 - still being written
                pass
        if time.time() > deadline:
            raise StoreError(f"store {path} did not appear within {wait_s:.0f} s")
        time.sleep(0.2)


def store_id(g) -> str:
    return str(g.attrs.get("jaxrnn_store_id", ""))


def done_mask(g) -> np.ndarray:
    return np.asarray(g["done"][...], dtype=bool)


def array_names(g) -> set[str]:
    """Names of the store's arrays (zarr's listing would warn about the marker file, which is ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{MARKER}.*")
        return set(g.array_keys())


def cell_variables(g) -> list[str]:
    """The per-network variables of a store (those with the grid axes and seed), in a fixed order."""
    return sorted(name for name in NET_VARS if name in array_names(g))


def _checksum(parts) -> int:
    h = hashlib.blake2b(digest_size=8)
    for name, val in parts:
        a = np.ascontiguousarray(val)
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return int.from_bytes(h.digest(), "little") or 1  # 0 is the fill value: "never written"


def write_cells(g, spec: SweepSpec, cells: np.ndarray, data: dict):
    """Write per-network arrays for whole cells, then their checksums, then mark the cells done.

    `data[name]` has shape (len(cells), n_seeds, *extra) in the store's layout.
    """
    shape = spec.grid.shape
    names = cell_variables(g)
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"write_cells: no data for store variables {missing}")
    arrays = {name: g[name] for name in names}
    idxs = [tuple(int(i) for i in np.unravel_index(int(c), shape)) for c in cells]
    vals = {name: np.asarray(data[name]).astype(arr.dtype, copy=False) for name, arr in arrays.items()}
    for name, arr in arrays.items():
        for k, idx in enumerate(idxs):
            arr[idx] = vals[name][k]
    ck, done = g["cell_checksum"], g["done"]
    for k, idx in enumerate(idxs):
        ck[idx] = np.uint64(_checksum((name, vals[name][k]) for name in names))
    for idx in idxs:
        done[idx] = True


def verify_cells(g, spec: SweepSpec, cells=None) -> np.ndarray:
    """Flat indices of cells marked done whose stored data no longer matches their checksum (a deleted
    or corrupted chunk reads back as fill values or fails to decode). `cells`: the flat cells to check
    (default: every done cell)."""
    shape = spec.grid.shape
    done = done_mask(g).reshape(-1)
    cells = (
        np.flatnonzero(done)
        if cells is None
        else np.asarray([c for c in np.asarray(cells) if done[c]], dtype=np.int64)
    )
    names = cell_variables(g)
    arrays = {name: g[name] for name in names}
    ck = g["cell_checksum"]
    bad = []
    for c in cells:
        idx = tuple(int(i) for i in np.unravel_index(int(c), shape))
        try:
            stored = int(ck[idx])
            parts = [(name, arrays[name][idx]) for name in names]
            ok = stored != 0 and _checksum(parts) == stored
        except Exception:  # noqa: BLE001 - an undecodable chunk is a corrupt cell
            ok = False
        if not ok:
            bad.append(int(c))
    return np.asarray(bad, dtype=np.int64)


def open_dataset(path, *, squeeze: bool = False):
    """The store as an xarray Dataset (lazy). `squeeze=True` drops the grid axes of size 1 (their
    value stays as a scalar coordinate), e.g. a (sigma, c) sweep at one N, w, eta and optimizer."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(str(path))
    if squeeze:
        ds = ds.squeeze([a for a in AXES if a in ds.dims and ds.sizes[a] == 1])
    return ds


def netcdf_safe(ds):
    """The dataset with every complex variable split into `NAME_real` and `NAME_imag` (NetCDF has no
    complex type), `done` as int8 and the store-internal `cell_checksum` left out, attributes kept; `ds.pipe(netcdf_safe).to_netcdf(path)` writes a portable file."""
    out = ds.drop_vars([v for v in ("cell_checksum",) if v in ds])  # the store's own integrity data
    if "done" in out:
        out["done"] = out["done"].astype("int8")  # NetCDF-3 has no bool
    for name in list(out.data_vars):
        da = ds[name]
        if np.issubdtype(da.dtype, np.complexfloating):
            for part, fn in (("real", np.real), ("imag", np.imag)):
                v = da.copy(data=fn(da.values))
                v.attrs = {**da.attrs, "long_name": f"{part} part of: {da.attrs.get('long_name', name)}"}
                out[f"{name}_{part}"] = v
            out = out.drop_vars(name)
    for name in out.variables:  # zarr's own encodings do not apply to NetCDF
        out[name].encoding = {}
    return out
