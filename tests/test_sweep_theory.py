"""Acceptance (issue 4, small N): sigma = 0 cells of a sweep agree with the sigma = 0 theory started
from each network's own initial condition (t_learn within 0.5 %), and `compare` reports it."""

import numpy as np
import pytest

from jaxrnn.plots import compare_table
from jaxrnn.sweep import load_spec, open_dataset, run_sweep


@pytest.mark.slow  # ~70-95 s on 2 shared cores: two diffrax compiles (N -> inf and own-IC theory)
def test_sigma0_cells_match_own_theory(tmp_path):
    # the committed acceptance config, shrunk: N = 16, 3 seeds, T = 2 (t_learn ~ 0.9 at c = 0.1)
    spec = load_spec(
        "sweeps/paper/sigma0_theory_check.toml",
        ["grid.N=[16]", "grid.seed={count=3}", "train.steps=200", "train.n_log=21"],
    )
    path = tmp_path / "s.zarr"
    run_sweep(spec, path, quiet=True, n_devices=1)
    ds = open_dataset(path).load()
    sim = ds["t_learn"].values.ravel()
    own = ds["theory_t_learn"].values.ravel()
    inf = float(ds["theory_inf_t_learn"].values.ravel()[0])
    assert sim.size == 3 and np.isfinite(sim).all() and np.isfinite(own).all()
    np.testing.assert_allclose(sim, own, rtol=5e-3)
    # the finite-N spread is real (own theory differs per seed), and the N -> inf limit is nearby
    assert np.ptp(own) > 1e-3 * inf
    assert abs(sim.mean() / inf - 1) < 0.2
    table = compare_table(path)
    assert "max|sim/own-1|" in table and "per-network" in table and "mean/inf-1" in table
