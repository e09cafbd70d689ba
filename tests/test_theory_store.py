"""`jaxrnn theory`: the N -> inf theory over a config's grid, in the simulation store's layout."""

import numpy as np
import pytest

from jaxrnn.cli import main
from jaxrnn.sweep import ConfigError, open_dataset, spec_from_dict
from jaxrnn.sweep._theory_store import run_theory_sweep, theory_spec

RAW = {
    "name": "th",
    "grid": {"N": [8], "sigma": [0.0, 0.2], "c": [0.3, 0.5], "seed": {"count": 3}},
    "train": {"dt": 0.02, "steps": 40, "n_log": 9},
    "theory": {"depth": 1},
}


def test_theory_store_equals_direct_solves_and_matches_the_simulation_layout(tmp_path):
    import jaxrnn
    import jaxrnn.theory as T

    spec = spec_from_dict(RAW)
    path = tmp_path / "th-theory.zarr"
    s = run_theory_sweep(spec, path, quiet=True)
    assert s["solved"] == 4 and s["failed"] == 0
    ds = open_dataset(path).load()
    assert tuple(ds["t_learn"].dims) == ("N", "sigma", "c", "w", "eta", "optimizer", "seed")
    assert np.isinf(ds["N"].values).all() and ds.sizes["seed"] == 1 and ds["done"].values.all()
    ts = spec.log_times()
    direct0 = T.solve(jaxrnn.leaky_integrator(np.array([0.3, 0.5])), t1=float(ts[-1]), eta=np.ones(2), ts=ts)
    np.testing.assert_allclose(
        ds["t_learn"].sel(sigma=0.0).values.ravel(), np.asarray(direct0.t_learn), rtol=1e-12
    )
    # sigma = 0.2, both c in one call (as the store's row is solved: its compiled program, not a second one)
    direct = T.solve(
        jaxrnn.leaky_integrator(np.array([0.3, 0.5])),
        t1=float(ts[-1]),
        eta=np.ones(2),
        ts=ts,
        sigma=0.2,
        depth=1,
    )
    np.testing.assert_allclose(
        ds["t_learn"].sel(sigma=0.2).values.ravel(), np.asarray(direct.t_learn), rtol=1e-12
    )
    np.testing.assert_allclose(
        ds["loss"].sel(sigma=0.2).values.reshape(2, -1), np.asarray(direct.loss).reshape(2, -1), rtol=1e-12
    )
    assert (ds["status"].values == 0).all()
    # resumes: nothing left to solve
    assert run_theory_sweep(spec, path, quiet=True)["solved"] == 0


def test_theory_refuses_configs_it_does_not_describe():
    for train in ({"loss": "sampled"}, {"scaling": "standard"}, {"trainable": ["W"]}):
        raw = {**RAW, "train": {**RAW["train"], **train}, "theory": {"overlay": "none"}}
        with pytest.raises(ConfigError):
            theory_spec(spec_from_dict(raw))
    raw = {**RAW, "grid": {**RAW["grid"], "optimizer": ["adam"]}, "theory": {"overlay": "none"}}
    with pytest.raises(ConfigError, match="grid.optimizer"):
        theory_spec(spec_from_dict(raw))


def test_theory_cli_writes_store_table_and_figure(tmp_path, capsys):
    cfg = tmp_path / "th.toml"
    cfg.write_text(
        'name = "thc"\n[grid]\nN = [8]\nsigma = [0.0]\nc = [0.3, 0.5]\n[train]\ndt = 0.02\nsteps = 40\nn_log = 9\n'
    )
    assert main(["theory", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "theory store:" in out and "2 cells solved" in out
    assert (tmp_path / "o" / "thc-theory" / "t_learn_curves.png").exists()
    # drawn against a simulation of the same grid: the comparison is a subtraction of like-named variables
    from jaxrnn.sweep import run_sweep

    sim = tmp_path / "sim.zarr"
    spec = spec_from_dict(
        {
            "name": "thc",
            "grid": {"N": [8], "sigma": [0.0], "c": [0.3, 0.5]},
            # no curvature checks, one chunk of 2 networks: test_plots' N = 8 programs (same dt and doublings)
            "train": {"dt": 0.02, "steps": 40, "n_log": 9, "curvature_checks": 0},
            "theory": {"overlay": "none"},
        }
    )
    run_sweep(spec, sim, chunk_size=2, n_devices=1, quiet=True)
    theory = tmp_path / "o" / "thc-theory.zarr"
    assert (
        main(["plot", str(sim), "--theory", str(theory), "--out", str(tmp_path / "f"), "--phase", "c,sigma"])
        == 0
    )
    assert (tmp_path / "f" / "theory_vs_sim_c_sigma.png").exists()
    assert main(["plot", str(sim), "--theory", str(tmp_path / "nothing.zarr")]) == 2
