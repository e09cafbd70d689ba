"""`train` at its defaults runs the fast paths (adaptive Smith doubling, on-device outlier tracking):
same trajectory as the reference loss, same outlier as the host eig where it is separated."""

import jax
import numpy as np
import pytest

import jaxrnn
from jaxrnn.train import train  # the function (the lazy `jaxrnn.train` may resolve to the submodule)
from jaxrnn.observables import outlier_eigenvalue


@pytest.fixture(scope="module")
def runs():
    assert jax.config.jax_enable_x64
    pop = jaxrnn.init_population(12, np.array([0.0, 0.3, 0.6, 0.9]), 1, 4, dtype=np.float64)
    target = jaxrnn.leaky_integrator(0.3)
    # checks=0: the edge-of-stability check (tested in test_stiff) is not what these tests are about, and its
    # Lanczos program costs ~3-4 s of compilation per loss
    kw = dict(method=jaxrnn.GradientFlow(0.02, checks=0), steps=150, n_log=6)
    fast = train(pop, target, keep_spectra=True, **kw)
    ref = train(pop, target, loss=jaxrnn.ExactLoss(fast=False), compute_spectra=False, **kw)
    return fast, ref


def test_default_train_equals_reference_loss(runs):
    fast, ref = runs
    assert fast.final.W.dtype == np.float64
    assert np.all(fast.status == 0) and np.all(ref.status == 0)
    assert np.all(fast.loss[:, -1] < 0.5 * fast.loss[:, 0])  # it learned
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-10, atol=0)
    for name in ("W", "u", "v"):
        a, b = np.asarray(getattr(fast.final, name)), np.asarray(getattr(ref.final, name))
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b))
    np.testing.assert_allclose(fast.t_learn, ref.t_learn, rtol=1e-10)


def test_device_outlier_equals_host_eig_where_separated(runs):
    fast, _ = runs
    host = outlier_eigenvalue(fast.eigenvalues, "integrator")
    sep = fast.outlier_separated
    assert sep.dtype == bool and sep.shape == fast.loss.shape
    # sigma = 0, 0.3: the learned outlier (-> 0.7) is clearly outside the bulk; sigma = 0.9: 0.7 lies
    # inside the margin (1.48 sigma at N = 12), never separated
    assert sep[:2, -1].all() and not sep[3].any()
    err = np.abs(fast.outlier - host) / np.maximum(np.abs(host), 1.0)  # W0 = 0 at sigma = 0: eigenvalue 0
    assert np.max(err[sep]) <= 1e-6
    assert np.all(fast.outlier_residual[sep] < 1e-3)


def test_t_learn_eigenvalue_needs_a_separated_outlier(runs):
    fast, _ = runs
    t_eig = fast.t_learn_eigenvalue
    assert np.all(np.isfinite(t_eig) == np.any(fast.outlier_separated, axis=1) & np.isfinite(t_eig))
    never = ~np.any(fast.outlier_separated, axis=1)
    assert np.all(np.isnan(t_eig[never]))


def test_outlier_off_and_spectra_only_on_request():
    pop = jaxrnn.init_population(8, 0.3, 0, 2, dtype=np.float64)
    res = train(pop, jaxrnn.leaky_integrator(0.3), steps=4, n_log=2, compute_spectra=False)
    assert np.all(np.isnan(res.outlier)) and res.outlier_separated is None and res.eigenvalues is None
    res = train(pop, jaxrnn.leaky_integrator(0.3), steps=4, n_log=2)
    assert res.eigenvalues is None and np.all(np.isfinite(res.outlier))


def test_sampled_loss_fft_equals_scan():
    pop = jaxrnn.init_population(8, 0.4, 2, 3, dtype=np.float64)
    kw = dict(method=jaxrnn.GradientDescent(), eta=0.05, steps=20, n_log=3, compute_spectra=False)
    a = train(pop, jaxrnn.leaky_integrator(0.5), loss=jaxrnn.SampledLoss(0.1, 8, 40, 5), **kw)
    b = train(pop, jaxrnn.leaky_integrator(0.5), loss=jaxrnn.SampledLoss(0.1, 8, 40, 5, fft=False), **kw)
    assert np.max(np.abs(np.asarray(a.final.W) - np.asarray(b.final.W))) <= 1e-10
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10)


def test_progress_bar_and_to_xarray(capsys):
    pop = jaxrnn.init_population(8, 0.3, 0, 2, dtype=np.float64)
    res = train(pop, jaxrnn.leaky_integrator(0.3), steps=10, n_log=3, progress=True)
    assert "10/10" in capsys.readouterr().err
    ds = res.to_xarray(sigma=0.3)
    np.testing.assert_array_equal(ds["loss"].values, res.loss)
    with pytest.raises(ValueError, match="progress"):
        train(pop, jaxrnn.leaky_integrator(0.3), steps=10, progress="yes")
