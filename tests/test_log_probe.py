"""The logged loss of a fixed-step method with a deterministic loss comes from the step's own probe at the end
of each block (`AbstractFixedStepMethod.advance`): it must equal the exact loss of the parameters it is logged for.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

jax.config.update("jax_enable_x64", True)


def _population(N=8, M=3, seed=4):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, N, N)) * np.array([0.1, 0.3, 0.6])[:M, None, None] / np.sqrt(N)
    u, v = rng.standard_normal((M, N)), rng.standard_normal((M, N))
    return jaxrnn.LinearRNN(jnp.asarray(W), jnp.asarray(u), jnp.asarray(v))


@pytest.mark.parametrize(
    "method, eta", [(jaxrnn.GradientFlow(dt=0.02, checks=0), 1.0), (jaxrnn.GradientDescent(), 0.05)]
)
def test_logged_loss_is_the_loss_of_the_logged_parameters(method, eta):
    """Float64: the first and last logged losses equal `population_loss` of the initial and final networks, and a
    middle log point equals the last one of a run stopped there (1e-12 relative)."""
    model, target = _population(), jaxrnn.leaky_integrator(0.3)
    kw = dict(eta=eta, method=method, loss=jaxrnn.ExactLoss())
    res = jaxrnn.train(model, target, steps=20, n_log=3, **kw)
    assert np.all(res.status == 0)
    exact = jax.vmap(lambda m: jaxrnn.population_loss(m, target, doublings=40))
    np.testing.assert_allclose(res.loss[:, 0], exact(model), rtol=1e-12)
    np.testing.assert_allclose(res.loss[:, -1], exact(res.final), rtol=1e-12)
    half = jaxrnn.train(model, target, steps=10, n_log=2, **kw)
    np.testing.assert_allclose(res.loss[:, 1], half.loss[:, -1], rtol=1e-12)
    np.testing.assert_allclose(res.loss[:, 1], exact(half.final), rtol=1e-12)


def test_probe_freezes_a_bad_end_state_as_the_next_step_would():
    """One step that takes network 1 past stability (W - I not Hurwitz, still finite): the closing probe at step 1
    finds it, reverts it to its last good parameters and flags it (diverged at step 1), where the end state would
    otherwise be returned unchecked; network 0 is untouched."""
    model, target = _population(M=2), jaxrnn.leaky_integrator(0.3)
    eta = jnp.asarray([0.05, 40.0])
    kw = dict(method=jaxrnn.GradientDescent(), loss=jaxrnn.ExactLoss())
    res = jaxrnn.train(model, target, eta=eta, steps=1, n_log=2, **kw)
    assert res.status[0] == 0 and res.status[1] == 1 and res.diverged_step[1] == 1
    assert np.isnan(res.loss[1, -1]) and np.isfinite(res.loss[0, -1])
    np.testing.assert_array_equal(res.final.W[1], model.W[1])  # reverted to its last good parameters
    # the step it took was finite: only the probe's Hurwitz check can have flagged it
    g = jaxrnn.population_loss_and_grad(jax.tree.map(lambda x: x[1], model), target)[1]
    W1 = model.W[1] - 40.0 * g.W
    assert np.all(np.isfinite(W1)) and np.max(np.linalg.eigvals(np.asarray(W1)).real) > 1
    alone = jaxrnn.train(jax.tree.map(lambda x: x[:1], model), target, eta=0.05, steps=1, n_log=2, **kw)
    # a population of one compiles another program: the same arithmetic up to the last bit
    np.testing.assert_allclose(res.loss[0], alone.loss[0], rtol=1e-13)
