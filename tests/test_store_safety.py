"""The store never deletes or overwrites what it did not create, and never reports a hole as done."""

import json
import shutil

import numpy as np
import pytest
import zarr

from jaxrnn.sweep import open_dataset, run_sweep, spec_from_dict
from jaxrnn.sweep._store import MARKER, StoreError, StoreMismatch, read_marker, remove_store, verify_cells

RAW = {
    "name": "tiny",
    "grid": {"N": [4], "sigma": [0.0, 0.3], "c": [0.5, 0.8], "seed": {"count": 2}},
    "train": {"dt": 0.02, "steps": 20, "n_log": 5, "curvature_checks": 0},  # test_sweep_run's programs
    "theory": {"overlay": "none"},
}
SPEC = spec_from_dict(RAW)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    path = tmp_path_factory.mktemp("finished") / "s.zarr"
    run_sweep(SPEC, path, chunk_size=2, n_devices=1, quiet=True)
    return path


def _copy(finished, tmp_path):
    dst = tmp_path / "s.zarr"
    shutil.copytree(finished, dst)
    return dst


def _values(path):
    ds = open_dataset(path).load()
    return {k: ds[k].values for k in ds.data_vars}


def test_foreign_folder_is_refused_and_untouched(tmp_path):
    notes = tmp_path / "thesis"
    notes.mkdir()
    (notes / "chapter1.tex").write_text("precious")
    for fresh in (False, True):
        with pytest.raises(StoreError, match="not a jaxrnn store"):
            run_sweep(SPEC, notes, fresh=fresh, n_devices=1, quiet=True)
        assert (notes / "chapter1.tex").read_text() == "precious"
    with pytest.raises(StoreError, match="not a jaxrnn store"):
        remove_store(notes)
    assert (notes / "chapter1.tex").exists()


def test_file_and_file_parent_are_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        run_sweep(SPEC, f, n_devices=1, quiet=True)
    with pytest.raises(StoreError, match="is a file"):
        run_sweep(SPEC, f / "sub" / "s.zarr", n_devices=1, quiet=True)
    assert f.read_text() == "x"


def test_unwritable_location_is_refused_before_compute(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(
        os, "access", lambda p, mode: False
    )  # root ignores permissions; simulate a read-only folder
    with pytest.raises(StoreError, match="no write permission"):
        run_sweep(SPEC, tmp_path / "ro" / "s.zarr", n_devices=1, quiet=True)
    assert not (tmp_path / "ro").exists()


def test_empty_folder_is_used_and_marked(tmp_path, finished):
    m = read_marker(finished)
    assert m["format"] == "jaxrnn-store" and m["config_hash"] == SPEC.config_hash
    assert set(m["entries"]) >= {"done", "cell_checksum", "loss"}


def test_fresh_removes_only_a_store_without_foreign_entries(tmp_path, finished):
    path = _copy(finished, tmp_path)
    (path / "my_notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="did not create"):
        run_sweep(SPEC, path, fresh=True, n_devices=1, quiet=True)
    assert (path / "my_notes.txt").read_text() == "mine" and (path / MARKER).exists()
    (path / "my_notes.txt").unlink()
    remove_store(path)
    assert not path.exists()


def test_other_config_is_refused_not_deleted(tmp_path, finished):
    path = _copy(finished, tmp_path)
    other = spec_from_dict({**RAW, "train": {**RAW["train"], "steps": 21}})
    with pytest.raises(StoreMismatch):
        run_sweep(other, path, n_devices=1, quiet=True)
    assert open_dataset(path)["done"].values.all()


def test_deleted_chunk_is_detected_and_recomputed(tmp_path, finished):
    path = _copy(finished, tmp_path)
    full = _values(path)
    chunk = next(p for p in (path / "loss" / "c").rglob("*") if p.is_file())
    chunk.unlink()  # the cell now reads back as NaN fill values
    g = zarr.open_group(str(path), mode="r")
    bad = verify_cells(g, SPEC)
    assert len(bad) == 1
    s = run_sweep(SPEC, path, chunk_size=2, n_devices=1, quiet=True)
    assert not s.nothing_to_do and s.networks_run == 2
    after = _values(path)
    for k in full:
        np.testing.assert_array_equal(after[k], full[k], err_msg=k)
    assert len(verify_cells(zarr.open_group(str(path), mode="r"), SPEC)) == 0


def test_corrupt_chunk_is_detected(tmp_path, finished):
    path = _copy(finished, tmp_path)
    chunk = next(p for p in (path / "dW_op" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"\x00garbage")
    assert len(verify_cells(zarr.open_group(str(path), mode="r"), SPEC)) == 1


def test_damaged_root_metadata_keeps_results(tmp_path, finished):
    path = _copy(finished, tmp_path)
    meta = path / "zarr.json"
    meta.write_text(meta.read_text()[: len(meta.read_text()) // 2])
    with pytest.raises(StoreError, match="cannot be read.*--fresh"):
        run_sweep(SPEC, path, n_devices=1, quiet=True)
    assert (path / "loss").exists() and (path / MARKER).exists()


def test_interrupted_creation_is_recreated(tmp_path):
    path = tmp_path / "s.zarr"
    path.mkdir()
    (path / MARKER).write_text(json.dumps({"format": "jaxrnn-store", "entries": ["loss"]}))
    (path / "loss").mkdir()  # creation died before `ready`: nothing computed yet, ours to redo
    s = run_sweep(SPEC, path, chunk_size=64, n_devices=1, quiet=True)
    assert s.chunks_run == 1 and open_dataset(path)["done"].values.all()


def test_cf_attributes_and_netcdf_round_trip(tmp_path, finished):
    import xarray as xr

    from jaxrnn.cli import main

    ds = open_dataset(finished)
    for name in list(ds.coords) + list(ds.data_vars):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs, name
    assert main(["export", str(finished), str(tmp_path / "s.nc"), "--squeeze"]) == 0
    nc = xr.open_dataset(tmp_path / "s.nc").load()
    sq = open_dataset(finished, squeeze=True).load()
    assert "N" not in nc.dims and float(nc["N"]) == 4  # size-1 axes squeezed to scalar coordinates
    np.testing.assert_array_equal(
        nc["outlier_real"].values + 1j * nc["outlier_imag"].values, sq["outlier"].values
    )
    for k in ("loss", "t_learn", "dW_op", "status"):
        np.testing.assert_array_equal(nc[k].values, sq[k].values, err_msg=k)
    assert main(["export", str(finished), str(tmp_path / "s.nc")]) == 2  # no silent overwrite
