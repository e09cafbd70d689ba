"""Targets: closed-form norms, state-space realisations and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as si

import jaxrnn


TARGETS = [
    jaxrnn.leaky_integrator(0.3),
    jaxrnn.damped_oscillator(0.2, 1.5),
    jaxrnn.exponential_sum([1.0, 0.5 - 0.2j], [0.4, 0.3 + 2.0j]),
]


@pytest.mark.parametrize("target", TARGETS)
def test_norm_sq_matches_quadrature(target):
    ref = si.quad(lambda t: float(target(t)) ** 2, 0, 150, limit=4000, epsabs=1e-15, epsrel=1e-14)[0]
    assert abs(float(target.norm_sq()) - ref) < 1e-10 * ref


def test_closed_forms_of_the_two_named_targets():
    c, w = 0.2, 1.5
    assert np.isclose(float(jaxrnn.leaky_integrator(c).norm_sq()), 1 / (2 * c), rtol=1e-14)
    osc = jaxrnn.damped_oscillator(c, w).norm_sq()
    assert np.isclose(float(osc), 1 / (4 * c) + c / (4 * (c**2 + w**2)), rtol=1e-14)


@pytest.mark.parametrize("target", TARGETS)
def test_discrete_norm_matches_direct_sum(target):
    dt = 0.05
    ref = np.sum(np.asarray(target(np.arange(20000) * dt)) ** 2)
    assert abs(float(target.discrete_norm_sq(dt)) - ref) < 1e-10 * ref


@pytest.mark.parametrize("target", TARGETS)
def test_realization_reproduces_filter(target):
    S, b, c = target.realization()
    tau = np.linspace(0, 7, 15)
    k = [float(c @ jax.scipy.linalg.expm(S * t) @ b) for t in tau]
    np.testing.assert_allclose(k, np.asarray(target(tau)), atol=1e-12)


def test_population_of_targets_vmaps():
    cs = jnp.array([0.1, 0.2, 0.5])
    pop = jaxrnn.damped_oscillator(cs, 1.0)
    norms = jax.vmap(lambda t: t.norm_sq())(pop)
    np.testing.assert_allclose(
        norms, [float(jaxrnn.damped_oscillator(c, 1.0).norm_sq()) for c in cs], rtol=1e-14
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: jaxrnn.leaky_integrator(0.0), "c must be finite and > 0"),
        (lambda: jaxrnn.leaky_integrator(-1.0), "c must be finite and > 0"),
        (lambda: jaxrnn.leaky_integrator(float("nan")), "c must be"),
        (lambda: jaxrnn.damped_oscillator(0.1, float("inf")), "w must be finite"),
        (lambda: jaxrnn.exponential_sum([1.0], [-0.1]), "Re\\(poles\\)"),
        (lambda: jaxrnn.exponential_sum([1.0, 2.0], [0.1]), "same shape"),
    ],
)
def test_bad_targets_raise_named_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_scalar_c_with_array_w_broadcasts():
    pop = jaxrnn.damped_oscillator(0.1, np.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(pop.s_re[:, 0], 0.1)
    np.testing.assert_allclose(pop.s_im[:, 0], [-0.5, -1.0, -2.0])
