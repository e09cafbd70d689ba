"""A population trained in Python and a cell of a sweep store hold the same variables (names, dims,
units, values): `train_result_to_xarray` against the store."""

import numpy as np

from jaxrnn.results import train_result_to_xarray
from jaxrnn.sweep import open_dataset, run_sweep, spec_from_dict
from jaxrnn.variables import NETWORK_VARIABLES

RAW = {
    "name": "res",
    "grid": {"N": [4], "sigma": [0.0, 0.3], "c": [0.5], "seed": {"count": 2}},
    "train": {"dt": 0.02, "steps": 20, "n_log": 5, "curvature_checks": 0},  # test_sweep_run's programs
    "theory": {"overlay": "none"},
}


def test_train_result_to_xarray_equals_the_store_cell(tmp_path):
    from jaxrnn.sweep._runner import _networks, _targets, build_population, make_loss, make_method
    from jaxrnn.train import train

    spec = spec_from_dict(RAW)
    path = tmp_path / "s.zarr"
    # chunks of one cell (2 networks) on one device: the programs of the other tiny sweeps (test_sweep_run)
    run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    store = open_dataset(path).load()
    cell = np.array([1])  # sigma = 0.3
    net = _networks(spec, cell)
    model, _ = build_population(spec, 4, net)
    res = train(
        model,
        _targets(spec, net["c"], net["w"]),
        eta=net["eta"],
        method=make_method(spec, "flow"),
        loss=make_loss(spec),
        steps=spec.train.steps,
        log_steps=spec.log_steps(),
    )
    ds = train_result_to_xarray(res, sigma=net["sigma"])
    sc = store.isel(N=0, sigma=1, c=0, w=0, eta=0, optimizer=0).rename(seed="network")
    shared = [v for v in ds.data_vars if v in sc]
    assert {"loss", "outlier", "t_learn", "dW_op_over_sigma", "status"} <= set(shared)
    for v in shared:
        assert ds[v].dims == sc[v].dims, v
        assert ds[v].attrs["long_name"] == NETWORK_VARIABLES[v].long_name and "units" in ds[v].attrs
        np.testing.assert_allclose(ds[v].values, sc[v].values, rtol=1e-12, atol=0, equal_nan=True, err_msg=v)
    np.testing.assert_array_equal(ds["t"].values, store["t"].values)
