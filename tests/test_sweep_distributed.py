"""Two `jax.distributed` processes on localhost (CPU) write the same store as one process, also when
they replace an existing store with --fresh (no process may open the old one)."""

import os
import shutil
import socket
import subprocess
import sys

import numpy as np

from jaxrnn.sweep import load_spec, open_dataset, run_sweep

CFG = """
name = "dist"
[grid]
N = [4]
sigma = [0.0, 0.3]
c = [0.5, 0.8]
seed = {count = 2}
[train]
dt = 0.02
steps = 30
n_log = 6
spectra_at = [0.0, 0.4]
curvature_checks = 0
[theory]
overlay = "none"
"""


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(cfg, out, *extra):
    return [
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
        *extra,
    ]


def _data(path):
    ds = open_dataset(path).load()
    return ds, {k: ds[k].values for k in ds.data_vars}


def test_two_process_run_equals_one_process(tmp_path):
    _run(tmp_path)


def _run(tmp_path):
    cfg = tmp_path / "dist.toml"
    cfg.write_text(CFG)
    # the processes inherit the test session's XLA_FLAGS (4 host devices each, --devices 1 uses one) and
    # its compilation cache: process 0's programs are the one-process run's (same devices, same flags),
    # loaded from the cache; process 1's device has another global id, so it compiles its own
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}
    # the one-process reference: in this process, with the same chunking and one device (the spec is
    # test_sweep_run's RAW, so its programs are usually compiled already)
    s = run_sweep(load_spec(cfg), tmp_path / "one" / "dist.zarr", chunk_size=2, n_devices=1, quiet=True)
    assert s.chunks_run == 4
    # an existing finished store at the two-process path, replaced with --fresh: process 1 must wait for
    # process 0's new store, not open the old one (it would find every cell done and run nothing)
    shutil.copytree(tmp_path / "one" / "dist.zarr", tmp_path / "two" / "dist.zarr")
    coord = f"127.0.0.1:{_port()}"
    procs = [
        subprocess.Popen(
            _cmd(
                cfg,
                tmp_path / "two",
                "--coordinator",
                coord,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--fresh",
            ),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o
    # each process ran its own chunks (4 cells, chunk = 1 cell of 2 seeds: 2 chunks each)
    assert all("ran 2 chunk(s), 4 networks" in o for o in outs), outs
    ds2, a = _data(tmp_path / "two" / "dist.zarr")
    ds1, b = _data(tmp_path / "one" / "dist.zarr")
    assert ds2.attrs["process_count"] == 2 and ds1.attrs["process_count"] == 1
    assert ds2["done"].values.all()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
