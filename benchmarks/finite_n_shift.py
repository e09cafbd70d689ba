"""Finite-N shift of the sigma = 0 learning time, from each network's own exact 8-ODE.

At sigma = 0 the N-dimensional gradient flow is exactly the 8-ODE started from the network's own
(u0, v0) (docs/concepts.md §5; checked against full simulations to 3e-5 at N = 64 and 1e-5 at N = 256 in
docs/sweep.md), so the distribution of t_learn over seeds at any N costs one vmapped 8-ODE solve.
This prints the seed mean and spread of t_learn at each N against the N -> inf value, with the
standard error of the mean.

    python benchmarks/finite_n_shift.py [--seeds 512] [--c 0.1]
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import theory  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=512)
    p.add_argument("--c", type=float, default=0.1)
    p.add_argument("--Ns", type=int, nargs="+", default=[64, 256, 1024])
    a = p.parse_args()
    target = jaxrnn.leaky_integrator(a.c)
    ts = np.linspace(0, 4.0, 801)
    inf = float(np.asarray(theory.solve(target, t1=4.0, ts=ts).t_learn))
    print(f"c = {a.c}: N -> inf sigma = 0 theory t_learn = {inf:.5f}  ({a.seeds} seeds per N)")
    print("| N | seed mean t_learn | mean/inf - 1 | std. error | std/mean | std/mean * sqrt(N) |")
    print("|---|---|---|---|---|---|")
    for N in a.Ns:
        t0 = time.perf_counter()
        pop = jaxrnn.init_population(N, 0.0, 0, a.seeds)
        res = theory.solve(target, network=pop, t1=4.0, ts=ts)
        tl = np.asarray(res.t_learn)
        assert np.all(np.asarray(res.ok)) and np.all(np.isfinite(tl)), "a cell failed"
        m, s = tl.mean(), tl.std(ddof=1)
        print(
            f"| {N} | {m:.5f} | {m / inf - 1:+.4%} | {s / np.sqrt(len(tl)) / inf:.4%} | {s / m:.4%} | {s / m * np.sqrt(N):.3f} |"
            f"  ({time.perf_counter() - t0:.1f} s)"
        )


if __name__ == "__main__":
    main()
