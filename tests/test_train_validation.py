"""Every argument of `train` is checked before anything compiles; a bad one raises ValueError naming it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.train import (
    train,
)  # the function: once a test imports the submodule, the lazy `jaxrnn.train` is the module


def _pop(M=2):
    return jaxrnn.init_population(4, 0.1, 0, M)


def _with(pop, **fields):
    return jaxrnn.LinearRNN(fields.get("W", pop.W), fields.get("u", pop.u), fields.get("v", pop.v))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=np.ones(3)), r"eta must be a number or an array of shape \(2,\)"),
        (dict(eta=np.ones((2, 1))), r"eta must be a number or an array of shape \(2,\)"),
        (dict(eta=[1.0, np.nan]), "eta must be finite and > 0"),
        (dict(eta="fast"), "eta must be a number"),
        (dict(n_log=1), r"n_log must be an integer in \[2, steps \+ 1 = 11\]"),
        (dict(n_log=12), r"n_log must be an integer in \[2, steps \+ 1 = 11\]"),
        (dict(n_log=3.5), "n_log must be an integer"),
        (dict(steps=2.5), "steps must be a positive integer"),
        (dict(steps=True), "steps must be a positive integer"),
        (dict(method="rk4"), "method must be an AbstractMethod"),
        (dict(loss=jaxrnn.population_loss), "loss must be an AbstractLoss"),
        (dict(trainable=("W", "W")), "trainable"),
        (dict(trainable=()), "trainable"),
        (
            dict(keys=jax.random.split(jax.random.key(0), 3)),
            r"keys must hold one PRNG key per network, shape \(2,\)",
        ),
        (dict(keys=np.zeros((2, 3), np.uint32)), "keys must be typed PRNG keys"),
        (dict(noise_seed=1.5), "noise_seed must be an integer"),
        (dict(keep_spectra=True, compute_spectra=False), "keep_spectra=True needs compute_spectra=True"),
        (dict(compute_spectra="yes"), "compute_spectra must be True or False"),
        (dict(callback=3), "callback must be None or callable"),
        (
            dict(method=jaxrnn.StiffFlow(0.1), loss=jaxrnn.SampledLoss(0.1, 4, 10)),
            "StiffFlow integrates a deterministic",
        ),
    ],
)
def test_bad_argument_is_named(kwargs, match):
    kw = dict(steps=10)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(_pop(), jaxrnn.leaky_integrator(0.5), **kw)


@pytest.mark.parametrize("name", ["W", "u", "v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_initial_weights_name_the_field_and_network(name, bad):
    pop = _pop(3)
    x = np.array(getattr(pop, name))
    x[1].flat[0] = bad
    with pytest.raises(
        ValueError, match=rf"model\.{name} must be finite: non-finite entries in networks \[1\]"
    ):
        train(_with(pop, **{name: jnp.asarray(x)}), jaxrnn.leaky_integrator(0.5), steps=2)


def test_model_and_target_shapes_and_types():
    pop = _pop()
    with pytest.raises(ValueError, match="model must be a LinearRNN"):
        train({"W": pop.W}, jaxrnn.leaky_integrator(0.5), steps=2)
    with pytest.raises(ValueError, match="leading network axis"):
        train(jax.tree.map(lambda x: x[0], pop), jaxrnn.leaky_integrator(0.5), steps=2)
    with pytest.raises(ValueError, match="target must be an ExponentialSum"):
        train(pop, 0.5, steps=2)
    with pytest.raises(ValueError, match="target population has 3 entries"):
        train(pop, jaxrnn.leaky_integrator(np.array([0.1, 0.2, 0.3])), steps=2)
    with pytest.raises(ValueError, match="must share one dtype"):
        train(_with(pop, u=pop.u.astype(jnp.float32)), jaxrnn.leaky_integrator(0.5), steps=2)
    with pytest.raises(ValueError, match="model.W must be float32 or float64"):
        train(_with(pop, W=jnp.zeros(pop.W.shape, jnp.int32)), jaxrnn.leaky_integrator(0.5), steps=2)


def test_float64_input_with_x64_off_is_an_error_not_a_silent_downcast():
    pop = jaxrnn.LinearRNN(
        *(np.asarray(x, np.float64) for x in (_pop().W, _pop().u, _pop().v))
    )  # numpy float64
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="model.W is float64 but jax_enable_x64 is off"):
            train(pop, jaxrnn.leaky_integrator(0.5), steps=2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: jaxrnn.StiffFlow(0.0), "StiffFlow.dt"),
        (lambda: jaxrnn.StiffFlow(0.1, rtol=2.0), r"StiffFlow.rtol must be in \(0, 1\)"),
        (lambda: jaxrnn.StiffFlow(0.1, rank=0), "StiffFlow.rank must be an integer >= 1"),
        (lambda: jaxrnn.StiffFlow(0.1, rank=9, lanczos=8), "StiffFlow.rank must be <= StiffFlow.lanczos"),
        (lambda: jaxrnn.StiffFlow(0.1, atol=-1.0), "StiffFlow.atol"),
        (lambda: jaxrnn.GradientFlow(0.1, lanczos=-1), "GradientFlow.lanczos"),
        (lambda: jaxrnn.GradientFlow(0.1, edge=1.5), r"GradientFlow.edge must be in \(0, 1\]"),
    ],
)
def test_method_options_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_good_arguments_still_run():
    """The checks accept what they should: eta as a list of M, numpy keys data, log_steps, trainable as a name."""
    pop = _pop()
    keys = jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(2)))
    res = train(
        pop,
        jaxrnn.leaky_integrator(0.5),
        eta=[1.0, 0.5],
        steps=3,
        n_log=4,
        trainable="W",
        keys=np.asarray(keys),
        compute_spectra=False,
    )
    assert res.loss.shape == (2, 4) and np.all(np.isfinite(res.loss))


@pytest.mark.parametrize("seed", [0, 7, -1, 2**31 + 3])
def test_default_keys_are_fold_in_of_the_noise_seed(seed):
    """The default keys, made inside the set-up program from `noise_seed`, are fold_in(key(noise_seed), i):
    sampled training with them equals training with those keys passed explicitly, bit for bit."""
    pop, target = _pop(), jaxrnn.leaky_integrator(0.5)
    kw = dict(
        method=jaxrnn.GradientDescent(),
        loss=jaxrnn.SampledLoss(dt=0.1, batch=4, steps=20),
        steps=2,
        compute_spectra=False,
    )
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(2))
    by_seed = train(pop, target, noise_seed=seed, **kw)
    by_keys = train(pop, target, keys=keys, **kw)
    other = train(pop, target, noise_seed=seed + 1, **kw)
    for name in ("W", "u", "v"):
        np.testing.assert_array_equal(getattr(by_seed.final, name), getattr(by_keys.final, name))
    assert not np.array_equal(by_seed.final.W, other.final.W)


def test_finite_check_on_host_and_on_device_agree():
    """The host (numpy) and device (compiled reduction, used off the CPU backend) finiteness checks agree."""
    from jaxrnn.train import _finite_networks, _finite_networks_on_device

    pop = _pop(M=4)
    pop = _with(pop, W=pop.W.at[1, 2, 3].set(np.nan), v=pop.v.at[3, 0].set(-np.inf))
    host = _finite_networks(pop)
    assert isinstance(host, np.ndarray) and host.tolist() == [[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
    np.testing.assert_array_equal(host, np.asarray(_finite_networks_on_device(pop)))
