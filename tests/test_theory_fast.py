"""The fast sigma = 0 path: closed-form fields and Jacobians, the pivot-free solves, the batched Rodas4
work queue against an independent tight-tolerance scipy solve, eta rescaling, float64 without x64, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxrnn import theory
from jaxrnn.targets import ExponentialSum, damped_oscillator, leaky_integrator
from jaxrnn.theory._field import EIGHT_RATES, FIVE_RATES, eight_field, five_field
from jaxrnn.theory._rosenbrock import ldl_solve_unrolled
from jaxrnn.theory._sigma0 import eight_loss, five_loss

TARGETS = [
    leaky_integrator(0.1),
    damped_oscillator(0.2, 1.3),
    ExponentialSum(
        jnp.array([0.5, 0.3]), jnp.array([0.1, 0.2]), jnp.array([0.2, 0.4]), jnp.array([0.0, 1.0])
    ),
]


def _field_vs_autodiff(field, loss, rates):
    """jitted (closed form f, J) and (autodiff f, J) at one state (one compile per field, not per operation)."""
    R = jnp.asarray(rates)
    n = len(rates)

    def both(x, tg):
        lanes = jax.tree.map(lambda a: a[:, None], tg)
        f, J = field([x[i][None] for i in range(n)], lanes, True)
        f = jnp.stack([jnp.broadcast_to(a, (1,))[0] for a in f])
        J = jnp.stack([jnp.stack([jnp.broadcast_to(a, (1,))[0] for a in row]) for row in J])
        g = lambda x: -R * jax.grad(loss)(x, tg)
        return f, J, g(x), jax.jacfwd(g)(x)

    return jax.jit(both)


FIELDS = {
    5: _field_vs_autodiff(five_field, five_loss, FIVE_RATES),
    8: _field_vs_autodiff(eight_field, eight_loss, EIGHT_RATES),
}


@pytest.mark.parametrize("ti", range(3))
def test_closed_form_field_and_jacobian_match_autodiff(ti):
    """f = -R grad L and f' = -R Hess L in closed form == autodiff of the two-pole loss, to 1e-13 (relative)."""
    t = TARGETS[
        ti
    ]  # kind dropped (static): the field does not use it, so integrator and oscillator share a compile
    tg = ExponentialSum(*(jnp.asarray(a, jnp.float64) for a in (t.r_re, t.r_im, t.s_re, t.s_im)), kind="sum")
    rng = np.random.default_rng(ti)
    for n, fn in FIELDS.items():
        for _ in range(3):
            f, J, f_ref, J_ref = map(np.asarray, fn(jnp.asarray(0.3 * rng.normal(size=n)), tg))
            scale = max(float(np.max(np.abs(J_ref))), 1.0)
            assert np.max(np.abs(f - f_ref)) <= 1e-13 * scale
            assert np.max(np.abs(J - J_ref)) <= 1e-13 * scale


def test_ldl_solve_matches_numpy():
    """Pivot-free LDL^T on symmetric positive definite stacks == numpy.linalg.solve to 1e-12 (relative)."""
    rng = np.random.default_rng(0)
    for n in (5, 8):
        X = rng.normal(size=(64, n, n))
        S = X @ np.swapaxes(X, -1, -2) + np.logspace(-3, 3, 64)[:, None, None] * np.eye(n)
        b = rng.normal(size=(64, n))
        x = np.asarray(ldl_solve_unrolled(jnp.asarray(S), jnp.asarray(b)))
        ref = np.linalg.solve(S, b[..., None])[..., 0]
        assert np.max(np.abs(x - ref) / np.max(np.abs(ref), -1, keepdims=True)) <= 1e-10


def _scipy_reference(c, eta, ts, symmetric):
    """Independent reference: scipy LSODA at rtol 1e-12 on the autodiff gradient of the two-pole loss."""
    tg = leaky_integrator(c)
    loss, R = (five_loss, np.asarray(FIVE_RATES)) if symmetric else (eight_loss, np.ones(8))
    g = jax.jit(jax.grad(loss))
    x0 = (
        np.array([0, 0, 0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
        if symmetric
        else np.array([0, 0, 0, 0, 1, 0, 0, 1.0])
    )
    sol = solve_ivp(
        lambda t, x: -eta * R * np.asarray(g(jnp.asarray(x), tg)),
        (0, ts[-1]),
        x0,
        method="LSODA",
        rtol=1e-12,
        atol=1e-14,
        t_eval=ts,
    )
    return np.array([float(loss(jnp.asarray(x), tg)) for x in sol.y.T])


# one compiled program (8 padded cells, 61 saves) serves the grid tests below
C = np.array([0.01, 0.03, 0.1, 0.3])
ETA = np.array([1.0, 0.5, 2.0, 1.0])
TS = np.linspace(0.0, 3.0, 61)


@pytest.fixture(scope="module")
def grid5():
    return theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS)


def test_grid_matches_tight_reference_and_rescales_eta(grid5):
    """Rodas4 grid at rtol 1e-8 (rates eta = 0.5, 1, 2 by time rescaling) vs scipy at rtol 1e-12 with the rate
    eta in the vector field: loss to 1e-6 relative, t_learn to 1e-6 relative; the stiffest cell is c = 0.01."""
    assert np.all(grid5.ok)
    for i, (c, e) in enumerate(zip(C, ETA)):
        ref = _scipy_reference(c, e, TS, True)
        assert np.max(np.abs(grid5.loss[i] - ref) / ref) <= 1e-6
        t_ref = theory_learning_time(ref)
        assert abs(grid5.t_learn[i] / t_ref - 1) <= 1e-6


def theory_learning_time(loss):
    from jaxrnn.observables import learning_time

    return learning_time(TS, loss)


def test_five_conserves_charge_and_queue_is_order_free(grid5):
    """The 5-ODE charge beta (delta - alpha) + p q is kept to 1e-8 over the run (the solver does not enforce it),
    and a cell's result does not depend on which other cells share the queue (same cell, alone)."""
    q = grid5["charge"]
    assert np.max(np.abs(q - q[:, :1])) <= 1e-8
    one = theory.solve(leaky_integrator(C[2:3]), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA[2:3], ts=TS)
    np.testing.assert_array_equal(one.loss[0], grid5.loss[2])


def test_float64_without_global_x64(grid5):
    """With jax_enable_x64 off, solve still integrates in float64 (same numbers as with it on)."""
    with jax.enable_x64(False):
        r = theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS)
    assert r.loss.dtype == np.float64
    # the float32 target rates (c = 0.1 is not a float32 number) move L by ~1e-8 relative, not more
    assert np.max(np.abs(r.loss / grid5.loss - 1)) <= 1e-6


def test_failed_cells_are_flagged_with_nan():
    r = theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS, max_steps=30)
    assert not np.all(r.ok)
    bad = ~r.ok
    assert np.all(np.isnan(r.loss[bad, -1]))  # NaN from the failure on, never a number that looks right
    assert np.all(np.isfinite(r.loss[r.ok]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=0.0), "eta"),
        (dict(eta=-1.0), "eta"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1.0), "atol"),
        (dict(max_steps=0), "max_steps"),
        (dict(ts=[0.0, 1.0, 1.0]), "ts"),
        (dict(threshold=2.0), "threshold"),
        (dict(theory=theory.Sigma0(), sigma=0.2), "sigma"),
        (dict(theory=theory.Fock(2), depth=2), "depth"),
        (dict(theory=theory.Krylov(1)), "network"),
        (dict(theory=theory.Fock(1), symmetric=True), "symmetric"),
        (dict(sigma=0.2, depth=1, symmetric=True), "symmetric"),
    ],
)
def test_bad_options_raise(kwargs, match):
    kwargs = dict(kwargs)
    th = kwargs.pop("theory", None)
    with pytest.raises(ValueError, match=match):
        theory.solve(leaky_integrator(0.1), th, t1=1.0, **kwargs)


def test_theory_objects_validate():
    with pytest.raises(ValueError, match="depth"):
        theory.Fock(-1)
    with pytest.raises(ValueError, match="tail"):
        theory.Fock(1, tail=0)
    with pytest.raises(ValueError, match="depth"):
        theory.Krylov(1.5)
