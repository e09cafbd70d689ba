"""Reduced theories vs the core trainer's simulation: t_learn errors per Krylov / Fock depth.

    # block-Krylov at finite N (same networks as the simulation)
    python benchmarks/theory_compare.py krylov --N 64 --sigma 0.2 --c 0.1 --seeds 2 --depths 0 1 2
    # N -> inf Fock-space theory vs simulations at finite N
    python benchmarks/theory_compare.py fock --N 256 --sigma 0.1 0.2 --c 0.1 --seeds 4 --depths 1 2

Simulation: `jaxrnn.train(init_population(N, sigma, seed=0, M), leaky_integrator(c),
method=GradientFlow(dt, "rk4"), steps=..., log_steps=every `--log-every` steps)` in float64; t_learn is the
trainer's (first L < 1e-2 L(0), log-interpolated). Theories are saved on the same times.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np

import jaxrnn
from jaxrnn import theory
from jaxrnn.model import LinearRNN, init_population
from jaxrnn.targets import leaky_integrator
from jaxrnn.theory._fock import solve_fock
from jaxrnn.theory._krylov import solve_krylov


def simulate(N, sigma, M, c, dt, t1, every, dtype):
    pop = init_population(N, sigma, 0, M, dtype=dtype)
    steps = int(round(t1 / dt))
    t0 = time.perf_counter()
    res = jaxrnn.train(
        pop,
        leaky_integrator(c),
        method=jaxrnn.GradientFlow(dt, "rk4"),
        steps=steps,
        log_steps=np.arange(0, steps + 1, every),
    )
    print(
        f"# simulation N={N} sigma={sigma} M={M} dt={dt} steps={steps}: {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return pop, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["krylov", "fock"])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.2])
    ap.add_argument("--c", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--t1", type=float, default=2.0)
    ap.add_argument("--log-every", type=int, default=2)
    ap.add_argument("--float32", action="store_true")
    args = ap.parse_args()
    dtype = np.float32 if args.float32 else np.float64
    target = leaky_integrator(args.c)
    for sigma in args.sigma:
        pop, sim = simulate(args.N, sigma, args.seeds, args.c, args.dt, args.t1, args.log_every, dtype)
        ts = np.asarray(sim.t, dtype=float)
        print(
            f"# sim t_learn per seed: {np.asarray(sim.t_learn)}  status {np.asarray(sim.status)}", flush=True
        )
        th0 = theory.solve(target, ts=ts, t1=float(ts[-1]), rtol=1e-10, atol=1e-12)
        rows = [("sigma=0 theory (N->inf 8-ODE)", np.full(args.seeds, float(th0.t_learn)))]
        if args.mode == "krylov":
            nets = [
                LinearRNN(
                    np.asarray(pop.W[i], float), np.asarray(pop.u[i], float), np.asarray(pop.v[i], float)
                )
                for i in range(args.seeds)
            ]
            w0 = [LinearRNN(np.zeros_like(n.W), n.u, n.v) for n in nets]
            rows.append(
                (
                    "sigma=0 8-ODE from the seed's u0, v0 (W0 dropped)",
                    np.array(
                        [
                            theory.solve(
                                target, network=n, ts=ts, t1=float(ts[-1]), rtol=1e-10, atol=1e-12
                            ).t_learn
                            for n in w0
                        ]
                    ),
                )
            )
            for k in args.depths:
                t0 = time.perf_counter()
                rs = [solve_krylov(target, n, ts, depth=k, rtol=1e-9, atol=1e-11) for n in nets]
                print(
                    f"# krylov depth {k}: {time.perf_counter() - t0:.1f} s, ok {[bool(r.ok) for r in rs]}, d = {rs[0]['dim']}",
                    flush=True,
                )
                rows.append((f"block-Krylov depth {k}", np.array([float(r.t_learn) for r in rs])))
        else:
            for k in args.depths:
                t0 = time.perf_counter()
                r = solve_fock(target, sigma, ts, depth=k, rtol=1e-9, atol=1e-11)
                print(
                    f"# fock depth {k}: {time.perf_counter() - t0:.1f} s, ok {bool(r.ok)}, d = {int(r['dim'])}",
                    flush=True,
                )
                rows.append((f"Fock depth {k}", np.full(args.seeds, float(r.t_learn))))
        ref = np.asarray(sim.t_learn, float)
        print(
            f"\nN = {args.N}, sigma = {sigma}, c = {args.c}, seeds 0..{args.seeds - 1}: simulation t_learn "
            f"{', '.join(f'{x:.5f}' for x in ref)} (mean {ref.mean():.5f} +- {ref.std(ddof=1) / np.sqrt(len(ref)) if len(ref) > 1 else 0:.5f})"
        )
        print("| theory | t_learn per seed | rel. error per seed | rel. error of seed mean |")
        print("|---|---|---|---|")
        for name, tl in rows:
            err = (tl - ref) / ref
            print(
                f"| {name} | {', '.join(f'{x:.5f}' for x in tl)} | {', '.join(f'{e:+.2%}' for e in err)} | "
                f"{(tl.mean() - ref.mean()) / ref.mean():+.2%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
