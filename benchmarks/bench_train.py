"""Throughput of the population trainer against what a researcher would otherwise write.

Peer: a plain per-network loop in numpy/scipy (Bartels-Stewart `solve_continuous_lyapunov` for both
Gramians, the same closed-form gradients), one network after another. jaxrnn: one jitted, vmapped
program over the whole population (exact loss, adjoint gradients, matmul-only Lyapunov solver).
Both run discrete gradient descent with the same step on the same networks; the script checks they
end at the same loss, then prints network-steps per second and the ratio, measured side by side.

    python benchmarks/bench_train.py [--networks 64] [--N 32] [--steps 40] [--dtype float64]
"""

import argparse
import time

import jax
import numpy as np
import scipy.linalg as sl


def numpy_peer(W, u, v, c, eta, steps):
    """Per-network GD on the exact loss of a leaky integrator, numpy/scipy, mean-field rates."""
    N = len(u)
    s = 1.0 / N
    for step in range(steps + 1):  # the last pass only evaluates the final loss
        A = W - np.eye(N)
        P = sl.solve_continuous_lyapunov(A, -np.outer(u, u))
        O = sl.solve_continuous_lyapunov(A.T, -np.outer(v, v))
        R = np.linalg.inv(c * np.eye(N) - A)
        x, y = R @ u, R.T @ v
        loss = 0.5 * (s**2 * v @ P @ v - 2 * s * v @ x + 1 / (2 * c))
        if step == steps:
            return loss
        gW = s**2 * O @ P - s * np.outer(y, x)
        gu = s**2 * O @ u - s * y
        gv = s**2 * P @ v - s * x
        W, u, v = W - eta * gW, u - eta * N * gu, v - eta * N * gv


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=64)
    p.add_argument("--N", type=int, default=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    a = p.parse_args()
    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jaxrnn

    c, eta = 0.3, 0.02
    pop = jaxrnn.init_population(a.N, 0.3, 0, a.networks, dtype=getattr(np, a.dtype))
    target = jaxrnn.leaky_integrator(c, dtype=getattr(np, a.dtype))
    kw = dict(eta=eta, method=jaxrnn.GradientDescent(), steps=a.steps, n_log=2, compute_spectra=False)

    jaxrnn.train(pop, target, **kw)  # compile (cached for the timed call)
    t0 = time.perf_counter()
    res = jaxrnn.train(pop, target, **kw)
    t_jax = time.perf_counter() - t0

    n_peer = min(a.networks, 8)  # the peer is slow: time a subset and scale per network
    t0 = time.perf_counter()
    peer_loss = [
        numpy_peer(*(np.asarray(x[i], dtype=float) for x in (pop.W, pop.u, pop.v)), c, eta, a.steps)
        for i in range(n_peer)
    ]
    t_peer = time.perf_counter() - t0
    err = np.max(np.abs(np.array(peer_loss) - res.loss[:n_peer, -1]) / res.loss[:n_peer, -1])

    rate_jax = a.networks * a.steps / t_jax
    rate_peer = n_peer * a.steps / t_peer
    print(
        f"backend={jax.default_backend()} devices={jax.device_count()} dtype={a.dtype} M={a.networks} N={a.N} steps={a.steps}"
    )
    print(f"final-loss agreement with the numpy/scipy peer: max rel err {err:.1e}")
    print(f"jaxrnn (vmapped, jitted):      {rate_jax:10.1f} network-steps/s")
    print(f"numpy/scipy per-network loop:  {rate_peer:10.1f} network-steps/s")
    print(f"speed-up: {rate_jax / rate_peer:.1f}x")


if __name__ == "__main__":
    main()
