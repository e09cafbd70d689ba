"""jaxrnn's compile options (`jaxrnn/_compile.py`) change compile time, not results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import _compile
from jaxrnn.methods import NetworkField
from jaxrnn.model import _draw_population

jax.config.update("jax_enable_x64", True)


def test_unknown_options_are_dropped(monkeypatch):
    """An option this jaxlib does not know is probed away instead of failing every compile."""
    opts = dict(_compile._CPU_OPTIONS[_compile.HOT], xla_no_such_option_in_any_jaxlib=True)
    monkeypatch.setitem(_compile._CPU_OPTIONS, _compile.HOT, opts)
    got = _compile.compiler_options(_compile.HOT, "cpu")
    assert got is not None and "xla_no_such_option_in_any_jaxlib" not in got
    assert _compile.compiler_options(_compile.HOT, "gpu") is None  # other backends: XLA's defaults
    with pytest.raises(ValueError, match="role"):
        _compile.compiler_options("warm", "cpu")  # pyright: ignore[reportArgumentType]


def test_draws_are_bit_identical_under_the_options():
    """The threefry draws of `init_population` compiled with jaxrnn's options equal XLA's defaults bit for bit."""
    args = (8, np.array([0.1, 0.5, 0.0]), np.array([0, 3, 1]), np.array([2, 0, 5]), False, "mean_field",
            jnp.dtype("float64"))  # fmt: skip
    ours = _draw_population(*args)
    plain = jax.jit(_draw_population.__wrapped__, static_argnums=(0, 4, 5, 6))(*args)
    for a, b in zip((ours.W, ours.u, ours.v), (plain.W, plain.u, plain.v)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_exact_gradient_agrees_with_xla_defaults():
    """The exact loss and gradient under jaxrnn's options match the XLA-default build to rounding."""
    model = jaxrnn.init_population(8, 0.4, 0, 3)
    target = jaxrnn.leaky_integrator(0.2)
    loss = jaxrnn.ExactLoss().resolved(target)
    f = lambda m: jax.vmap(lambda mm: loss.value_and_grad(mm, target, None))(m)
    lowered = jax.jit(f).lower(model)
    ours = lowered.compile(compiler_options=_compile.compiler_options(_compile.HOT))(model)
    plain = lowered.compile()(model)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_cold_options_agree_with_xla_defaults():
    """Arithmetic compiled with the COLD options (LLVM -O0, `train`'s set-up) matches the XLA-default build
    to rounding: the charge (which the set-up computes as C0), its drift and the Lanczos operator norm."""
    from jaxrnn import observables

    model = jaxrnn.init_population(16, 0.6, 0, 5)
    W0 = jax.tree.map(lambda x: 0.5 * x, model).W

    def f(m):
        C = observables.charge(m.W, m.u, m.v)
        return observables.operator_norm(m.W - W0), observables.charge_drift(C, 0.9 * C, m.W, m.u, m.v)

    lowered = jax.jit(f).lower(model)
    cold = lowered.compile(compiler_options=_compile.compiler_options(_compile.COLD))(model)
    plain = lowered.compile()(model)
    for a, b in zip(cold, plain):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    assert _compile.compiler_options(_compile.COLD, "cpu")["xla_backend_optimization_level"] == 0


def test_rolled_rk4_step_equals_the_unrolled_formula():
    """GradientFlow's RK4 (stages in a loop) against the four stages written out, float64."""
    model = jax.tree.map(lambda x: x[0], jaxrnn.init_population(6, 0.5, 1, 1))
    target = jaxrnn.leaky_integrator(0.3)
    loss = jaxrnn.ExactLoss().resolved(target)
    field = NetworkField(loss, target, jnp.float64(1.0), jax.random.key(0), ("W", "u", "v"))
    h = 0.02
    method = jaxrnn.GradientFlow(dt=h)
    new, _, loss0, ok1, ok = jax.jit(lambda p: method.step(field, p, None, 0))(model)

    def unrolled(p):
        axpy = lambda a, x, y: jax.tree.map(lambda xi, yi: yi + a * xi, x, y)
        k1, l1, _ = field.velocity(p, 0)
        k2 = field.velocity(axpy(h / 2, k1, p), 0)[0]
        k3 = field.velocity(axpy(h / 2, k2, p), 0)[0]
        k4 = field.velocity(axpy(h, k3, p), 0)[0]
        incr = jax.tree.map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
        return axpy(h, incr, p), l1

    ref, ref_loss = jax.jit(unrolled)(model)
    assert bool(ok1) and bool(ok)
    np.testing.assert_allclose(float(loss0), float(ref_loss), rtol=1e-15)
    for a, b in zip((new.W, new.u, new.v), (ref.W, ref.u, ref.v)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)
