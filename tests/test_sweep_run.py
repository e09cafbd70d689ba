"""Runner and store: resume, done mask, config-hash refusal, chunk- and device-independence, SIGKILL."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr

from jaxrnn.sweep import StoreMismatch, open_dataset, run_sweep, spec_from_dict

RAW = {
    "name": "tiny",
    "grid": {"N": [4], "sigma": [0.0, 0.3], "c": [0.5, 0.8], "seed": {"count": 2}},
    # curvature_checks = 0: the edge-of-stability check (a Lanczos program, ~3 s to compile per chunk shape;
    # tested in test_stiff) is not what these tests are about. The sweeps of test_store_safety,
    # test_results, test_sweep_fuzz, test_sweep_distributed, test_plots and test_theory_store use the same
    # N = 4, dt, largest sigma and smallest c (so the same loss doublings) and chunk shapes: their programs
    # come from the session's compilation cache (tests/conftest.py)
    "train": {"dt": 0.02, "steps": 30, "n_log": 6, "spectra_at": [0.0, 0.4], "curvature_checks": 0},
    "theory": {"overlay": "none"},
}


def _spec(**train):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in RAW.items()}
    raw["train"] = {**raw["train"], **train}
    return spec_from_dict(raw)


def _data(path):
    ds = open_dataset(path).load()
    return {k: ds[k].values for k in ds.data_vars}


def _assert_same(a, b, rtol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        if k == "charge_drift":  # a roundoff-level difference of nearly equal matrices: compare absolutely
            np.testing.assert_allclose(
                a[k], b[k], rtol=0, atol=1e-14 if not rtol else 1e-5, equal_nan=True, err_msg=k
            )
        elif a[k].dtype.kind in "fc":
            if rtol:
                np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol, equal_nan=True, err_msg=k)
            else:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_run_resume_and_store_contents(tmp_path):
    spec = _spec()
    path = tmp_path / "s.zarr"
    s1 = run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    assert s1.chunks_run == 4 and s1.networks_run == 8
    ds = xr.open_zarr(path)
    assert dict(ds.sizes)["t"] == 6 and ds["done"].values.all()
    assert (ds["status"].values == 0).all()
    assert np.isfinite(ds["loss"].values).all() and np.isfinite(ds["outlier"].values).all()
    assert ds.attrs["config_hash"] == spec.config_hash and ds.attrs["Conventions"].startswith("CF")
    for key in (
        "git_commit",
        "software_versions",
        "backend",
        "device_kind",
        "device_count",
        "dtype",
        "date_created",
        "jaxrnn_config",
    ):
        assert key in ds.attrs
    # the loss decreases for every network
    L = ds["loss"].values
    assert (L[..., -1] < L[..., 0]).all()
    s2 = run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    assert s2.nothing_to_do and s2.chunks_skipped == 4


def test_partial_store_resumes_only_missing_cells(tmp_path):
    spec = _spec()
    path = tmp_path / "s.zarr"
    run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    full = _data(path)
    g = zarr.open_group(str(path), mode="r+")
    done = g["done"][...]
    done.reshape(-1)[[1, 2]] = False  # as if killed before these cells were marked
    g["done"][...] = done
    s = run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    assert s.chunks_run == 2 and s.networks_run == 4
    _assert_same(full, _data(path))


def test_config_hash_refusal_and_fresh(tmp_path):
    path = tmp_path / "s.zarr"
    run_sweep(_spec(), path, chunk_size=8, n_devices=1, quiet=True)
    other = _spec(steps=20)
    with pytest.raises(StoreMismatch, match="--fresh"):
        run_sweep(other, path, n_devices=1, quiet=True)
    s = run_sweep(other, path, fresh=True, n_devices=1, quiet=True)
    assert s.chunks_run >= 1
    assert xr.open_zarr(path).attrs["config_hash"] == other.config_hash


def test_chunk_size_and_device_count_independence(tmp_path):
    spec = _spec()
    run_sweep(spec, tmp_path / "a.zarr", chunk_size=2, n_devices=1, quiet=True)
    run_sweep(spec, tmp_path / "b.zarr", chunk_size=64, n_devices=1, quiet=True)
    run_sweep(spec, tmp_path / "c.zarr", chunk_size=6, n_devices=4, quiet=True)  # 4 simulated CPU devices
    a, b, c = (_data(tmp_path / f"{x}.zarr") for x in "abc")
    _assert_same(a, b)
    _assert_same(a, c)


def test_float32_chunk_independence(tmp_path):
    spec = _spec(dtype="float32")
    run_sweep(spec, tmp_path / "a.zarr", chunk_size=2, n_devices=1, quiet=True)
    run_sweep(spec, tmp_path / "b.zarr", chunk_size=64, n_devices=4, quiet=True)
    _assert_same(_data(tmp_path / "a.zarr"), _data(tmp_path / "b.zarr"), rtol=1e-6)


def test_cli_run_writes_store_and_figure_and_rerun_does_nothing(tmp_path):
    from jaxrnn.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\n[grid]\nN = [4]\nsigma = [0.0, 0.3]\nc = [0.5, 0.8]\nseed = {count = 2}\n'
        '[train]\ndt = 0.02\nsteps = 30\nn_log = 6\ncurvature_checks = 0\n[theory]\noverlay = "none"\n[output]\nplots = ["phase", "curves"]\n'
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "res"), "--quiet"]) == 0
    assert (tmp_path / "res" / "tiny.zarr").exists()
    assert (tmp_path / "res" / "tiny" / "phase_sigma_c.png").exists()
    xr.open_zarr(tmp_path / "res" / "tiny.zarr")


def _done_count(path):
    try:
        return int(zarr.open_group(str(path), mode="r")["done"][...].sum())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cfg = tmp_path / "kill.toml"
    cfg.write_text(
        'name = "kill"\n[grid]\nN = [4]\nsigma = {linspace = [0.0, 0.3, 6]}\nc = [0.5, 0.8]\nseed = {count = 2}\n'
        "[train]\ndt = 0.02\nsteps = 600\nn_log = 6\nspectra_at = [0.3]\ncurvature_checks = 0\n"
        '[theory]\noverlay = "none"\n'
    )
    # 600 steps make a chunk take ~0.3 s after compilation, longer than the random delay below, so at least
    # one of the >= 2 chunks left when kill_at is reached is still to run when the kill lands. One device
    # and chunks of 2, the largest sigma (0.3) and smallest c as in RAW above (same loss doublings), no
    # curvature checks: the same programs, which the subprocesses load from the session's compilation
    # cache (tests/conftest.py) instead of compiling them again
    out = tmp_path / "res"
    cmd = [
        sys.executable,
        "-m",
        "jaxrnn.cli",
        "run",
        str(cfg),
        "--out",
        str(out),
        "--chunk-size",
        "2",
        "--devices",
        "1",
        "--no-plot",
        "--quiet",
    ]
    store = out / "kill.zarr"
    total = 12
    kill_at = random.Random().randint(1, total - 2)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _done_count(store) < kill_at and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.random() * 0.2)  # land anywhere in the next chunk, writes included
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert _done_count(store) < total, "the run finished before it could be killed"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resum" in r.stderr or True
    # an uninterrupted run, in-process, same chunking and devices (chunking is tested separately)
    from jaxrnn.sweep import load_spec

    run_sweep(load_spec(cfg), tmp_path / "ref.zarr", chunk_size=2, n_devices=1, quiet=True)
    _assert_same(_data(store), _data(tmp_path / "ref.zarr"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_stiff_solver_sweep_follows_the_sigma_zero_theory(tmp_path):
    """solver = "stiff" end to end: StiffFlow's free-running blocks and snapshots through the runner into the
    store. At sigma = 0 the exact 8-ODE from each network's own (u0, v0) is the same flow, so the stored
    simulated loss must follow the stored theory loss at every log point (measured 5.7e-6 relative, StiffFlow's
    rtol 1e-7 against the ODE's 1e-8; <= 1e-4 asserted) and t_learn agree (measured 1e-7). c = 0.05 (top rate
    ~2000) is far past what RK4 at this dt = 0.1 could take."""
    raw = {
        "name": "stiff",
        "grid": {"N": [4], "sigma": [0.0], "c": [0.05, 0.2]},
        "train": {"solver": "stiff", "dt": 0.1, "steps": 30, "n_log": 6},
        "theory": {"overlay": "sigma0"},
    }
    path = tmp_path / "s.zarr"
    run_sweep(spec_from_dict(raw), path, chunk_size=2, n_devices=1, quiet=True)
    ds = xr.open_zarr(path).isel(N=0, sigma=0, w=0, eta=0, optimizer=0, seed=0).load()
    assert (ds["status"].values == 0).all() and (ds["theory_ok"].values == 1).all()
    np.testing.assert_allclose(ds["loss"].values, ds["theory_loss"].values, rtol=1e-4)
    assert np.all(np.isfinite(ds["t_learn"].values))  # both learned (L < 1e-2 L0) within t = 3
    np.testing.assert_allclose(ds["t_learn"].values, ds["theory_t_learn"].values, rtol=1e-5)
