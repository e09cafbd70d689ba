"""Dense Smith doubling vs low-rank ADI Gramians: time per loss-and-gradient, side by side in one run.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_gramian.py --N 256 512 1024 --M 2

Both evaluate `vmap(population_loss_and_grad)` on the same population (leaky integrator c = 0.1) at
two points: the initial networks and networks whose outlier sits near 1 - c (W + 0.7 u v^T / u.v),
where the ADI needs the most steps. Reports the best of `--repeat` timings and the largest relative
difference between the two solvers' losses and gradients.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

from jaxrnn.loss import population_loss_and_grad
from jaxrnn.lyapunov import doublings_for
from jaxrnn.model import LinearRNN, init_population
from jaxrnn.targets import leaky_integrator


def best_time(f, x, repeat):
    jax.block_until_ready(f(x))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--M", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--c", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--float32", action="store_true")
    args = ap.parse_args()
    dtype = np.float32 if args.float32 else np.float64
    target = leaky_integrator(args.c)
    K = doublings_for(args.c / 4)  # what the trainer picks
    print(
        f"# {np.dtype(dtype).name}, M = {args.M} networks per call, sigma = {args.sigma}, c = {args.c}, doublings = {K}"
    )
    print("| N | point | dense (s) | low-rank (s) | ratio | max rel. diff (loss, grads) |")
    print("|---|---|---|---|---|---|")
    for N in args.N:
        pop = init_population(N, args.sigma, 0, args.M, dtype=dtype)
        learned = LinearRNN(
            pop.W + 0.7 * jnp.einsum("mi,mj->mij", pop.u, pop.v) / jnp.sum(pop.u * pop.v, -1)[:, None, None],
            pop.u,
            pop.v,
        )
        for name, point in (("init", pop), ("outlier near 1-c", learned)):
            fd = jax.jit(jax.vmap(lambda m: population_loss_and_grad(m, target, doublings=K)))
            fl = jax.jit(jax.vmap(lambda m: population_loss_and_grad(m, target, gramian="low_rank")))
            td, tl = best_time(fd, point, args.repeat), best_time(fl, point, args.repeat)
            d, low = fd(point), fl(point)
            diff = max(
                float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                for a, b in zip(jax.tree.leaves((low[0], low[1])), jax.tree.leaves((d[0], d[1])))
            )
            print(f"| {N} | {name} | {td:.3f} | {tl:.3f} | {td / tl:.1f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
