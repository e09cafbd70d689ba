"""Accuracy report for the core engine: every number in docs/core.md comes from this script.

python benchmarks/accuracy_core.py
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.loss import population_loss_and_grad  # noqa: E402
from jaxrnn.lyapunov import doublings_for, solve_lyapunov  # noqa: E402


def lyapunov_errors():
    print("## Lyapunov solve vs scipy.linalg.solve_continuous_lyapunov (n = 64, 5 non-normal matrices each)")
    print("| slowest decay | float64 max rel err | float32 max rel err |")
    print("|---|---|---|")
    for kappa in (1.0, 1e-1, 1e-2, 1e-3):
        e64, e32 = [], []
        for seed in range(5):
            rng = np.random.default_rng(seed)
            W = rng.normal(size=(64, 64)) * 0.8 / 8
            A = W - (np.max(np.linalg.eigvals(W).real) + kappa) * np.eye(64)
            u = rng.normal(size=64)
            ref = sl.solve_continuous_lyapunov(A, -np.outer(u, u))
            for dt, errs in ((jnp.float64, e64), (jnp.float32, e32)):
                X, _ = solve_lyapunov(
                    jnp.asarray(A, dt), jnp.asarray(np.outer(u, u), dt), doublings=doublings_for(kappa)
                )
                errs.append(np.max(np.abs(np.asarray(X, float) - ref)) / np.max(np.abs(ref)))
        print(f"| {kappa:g} | {max(e64):.1e} | {max(e32):.1e} |")


def gradient_errors():
    print("\n## Gradients (N = 16, sigma = 0.5, float64)")
    print("| target | adjoint vs autodiff | adjoint vs central FD (h = 1e-5), worst block |")
    print("|---|---|---|")
    targets = {
        "integrator c=0.3": jaxrnn.leaky_integrator(0.3),
        "oscillator c=0.3 w=1": jaxrnn.damped_oscillator(0.3, 1.0),
    }
    for name, target in targets.items():
        net = jaxrnn.init_network(16, 0.5, jax.random.key(2))
        loss = jax.jit(lambda m, target=target: population_loss_and_grad(m, target)[0])
        _, g, _ = population_loss_and_grad(net, target)
        ga = jax.grad(jaxrnn.population_loss)(net, target)
        e_ad = max(
            float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ga))
        )
        rng = np.random.default_rng(0)
        e_fd = 0.0
        for field in ("W", "u", "v"):
            d = jnp.asarray(rng.normal(size=getattr(net, field).shape))
            mk = lambda e, net=net, d=d, field=field: jaxrnn.LinearRNN(
                **{k: getattr(net, k) + (e * d if k == field else 0) for k in "Wuv"}
            )
            fd = (loss(mk(1e-5)) - loss(mk(-1e-5))) / 2e-5
            an = jnp.vdot(getattr(g, field), d)
            e_fd = max(e_fd, abs(float(fd - an) / float(an)))
        print(f"| {name} | {e_ad:.1e} | {e_fd:.1e} |")


def training_runs():
    print("\n## Training (exact loss, mean-field rates, RK4 gradient flow dt = 0.01, eta = 1)")
    print("| run | dtype | L(0)/L(end) | final outlier | t_learn | t_learn (eigenvalue) | charge drift |")
    print("|---|---|---|---|---|---|---|")
    runs = [
        (
            "integrator c=0.1, sigma=0.1, N=128, t=3",
            128,
            jaxrnn.leaky_integrator(0.1, dtype=jnp.float32),
            300,
            jnp.float32,
        ),
        ("integrator c=0.1, sigma=0.1, N=128, t=3", 128, jaxrnn.leaky_integrator(0.1), 300, jnp.float64),
        (
            "oscillator c=0.1, w=1, sigma=0.1, N=128, t=12",
            128,
            jaxrnn.damped_oscillator(0.1, 1.0),
            1200,
            jnp.float64,
        ),
    ]
    for name, N, target, steps, dtype in runs:
        pop = jaxrnn.init_population(N, 0.1, 0, 1, dtype=dtype)
        r = jaxrnn.train(pop, target, method=jaxrnn.GradientFlow(0.01), steps=steps, n_log=61)
        print(
            f"| {name} | {np.dtype(dtype).name} | {r.loss[0, 0] / r.loss[0, -1]:.3g} | {r.outlier[0, -1]:.5f} | "
            f"{r.t_learn[0]:.4f} | {r.t_learn_eigenvalue[0]:.4f} | {np.max(r.charge_drift):.1e} |"
        )
    pop = jaxrnn.init_population(16, 0.5, 0, 4)
    r = jaxrnn.train(
        pop,
        jaxrnn.leaky_integrator(0.3),
        method=jaxrnn.GradientFlow(0.005),
        steps=400,
        n_log=5,
        compute_spectra=False,
    )
    print(
        f"\nCharge drift, N = 16, sigma = 0.5, c = 0.3, RK4 dt = 0.005 to t = 2 (float64), 4 networks: {np.max(r.charge_drift):.1e}"
    )
    print("\n## Perfect integrator (c = 0), finite horizon T = 50, N = 16, sigma = 0.1, Adam lr = 0.003")
    pop = jaxrnn.init_population(16, 0.1, 0, 4)
    r = jaxrnn.train(
        pop,
        jaxrnn.perfect_integrator(),
        loss=jaxrnn.FiniteHorizonLoss(50.0),
        method=jaxrnn.OptaxOptimizer(optax.adam),
        eta=0.003,
        steps=1000,
        n_log=11,
        keep_spectra=True,
    )
    print("| network | L(0) | L(end) | final outlier | second eigenvalue (real part) |")
    print("|---|---|---|---|---|")
    for i in range(4):
        ev = np.sort(r.eigenvalues[i, -1].real)[::-1]
        print(f"| {i} | {r.loss[i, 0]:.3f} | {r.loss[i, -1]:.2e} | {r.outlier[i, -1]:.5f} | {ev[1]:.4f} |")


if __name__ == "__main__":
    lyapunov_errors()
    gradient_errors()
    training_runs()
