"""N -> inf Fock-space theory vs large-N simulations: t_learn and outlier errors (issue 3's N = 1024 check).

    # one sigma per process (pin each to a core); writes benchmarks/data/fock_N1024_sigma0.2.json
    OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/fock_large_n.py --N 1024 --sigma 0.2 --seeds 8
    # table from the saved runs
    python benchmarks/fock_large_n.py --table benchmarks/data/fock_N1024_sigma*.json

Simulation: `jaxrnn.train(init_population(N, sigma, seed=0, M), leaky_integrator(c), eta=1,
method=GradientFlow(dt, "rk4"), loss=ExactLoss(gramian="low_rank"))`, the loss logged every step
(t_learn = first L < 1e-2 L(0), log-interpolated) and the outlier (host eig of W) every
`--outlier-every` steps: training runs in segments, each continuing from the last one's parameters
(gradient flow is Markov in (W, u, v), so this is the same trajectory). Theory: `solve_fock` at
depths 0 (= the sigma = 0 theory), 1, 2 on the same times.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np

import jaxrnn
from jaxrnn.model import init_population
from jaxrnn.observables import learning_time, outlier_eigenvalue
from jaxrnn.targets import leaky_integrator
from jaxrnn.theory._fock import solve_fock


def simulate(N, sigma, M, c, dt, steps, outlier_every, dtype):
    """Returns t (every step), loss (M, n_t), outlier times, outliers (M, n_o), status."""
    pop = init_population(N, sigma, 0, M, dtype=dtype)
    target = leaky_integrator(c)
    method = jaxrnn.GradientFlow(dt, "rk4")
    loss_fn = jaxrnn.ExactLoss(gramian="low_rank")
    t_all, loss_all, t_out, out_all = [0.0], None, [], []
    status = np.zeros(M, int)
    done = 0
    while done < steps:
        seg = min(outlier_every, steps - done)
        r = jaxrnn.train(
            pop,
            target,
            method=method,
            loss=loss_fn,
            steps=seg,
            log_steps=np.arange(seg + 1),
            compute_spectra=False,
        )
        loss_all = r.loss if loss_all is None else np.concatenate([loss_all, r.loss[:, 1:]], axis=1)
        t_all += list(done * dt + r.t[1:])
        if done == 0:
            t_out.append(0.0)
            out_all.append(outlier_eigenvalue(np.linalg.eigvals(np.asarray(pop.W, np.float64)), "integrator"))
        pop = r.final
        done += seg
        status |= r.status
        t_out.append(done * dt)
        out_all.append(outlier_eigenvalue(np.linalg.eigvals(np.asarray(pop.W, np.float64)), "integrator"))
        print(
            f"#   step {done}/{steps}: mean loss {np.nanmean(loss_all[:, -1]):.4e}, "
            f"mean outlier {np.mean(out_all[-1].real):.5f}",
            flush=True,
        )
    return np.asarray(t_all), loss_all, np.asarray(t_out), np.stack(out_all, 1).real, status


def run(args):
    dtype = np.float32 if args.float32 else np.float64
    target = leaky_integrator(args.c)
    steps = int(round(args.t1 / args.dt))
    t0 = time.perf_counter()
    t, loss, t_out, outl, status = simulate(
        args.N, args.sigma, args.seeds, args.c, args.dt, steps, args.outlier_every, dtype
    )
    sim_wall = time.perf_counter() - t0
    t_learn = learning_time(t, loss)
    print(f"# simulation: {sim_wall:.0f} s; t_learn {t_learn}; status {status}", flush=True)
    theories = {}
    for k in args.depths:
        t1 = time.perf_counter()
        r = solve_fock(target, args.sigma, t, depth=k, rtol=1e-9, atol=1e-11)
        idx = np.searchsorted(t, t_out)
        theories[k] = dict(
            t_learn=float(r.t_learn),
            outlier=np.asarray(r.outlier)[idx].real.tolist(),
            ok=bool(np.all(r.ok)),
            wall_s=time.perf_counter() - t1,
            dim=int(r["dim"]),
        )
        print(f"# fock depth {k}: t_learn {float(r.t_learn):.5f}, {theories[k]['wall_s']:.0f} s", flush=True)
    out = dict(
        N=args.N,
        sigma=args.sigma,
        c=args.c,
        seeds=args.seeds,
        dt=args.dt,
        t1=args.t1,
        dtype=np.dtype(dtype).name,
        sim_wall_s=sim_wall,
        t_learn=t_learn.tolist(),
        status=status.tolist(),
        t_out=t_out.tolist(),
        outlier=outl.tolist(),
        theories=theories,
    )
    path = pathlib.Path(args.out or f"benchmarks/data/fock_N{args.N}_sigma{args.sigma}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"# wrote {path}")
    table([path])


def table(paths):
    rows = [json.loads(pathlib.Path(p).read_text()) for p in paths]
    rows.sort(key=lambda r: r["sigma"])
    print(
        "\n| sigma | N, seeds | sim mean t_learn (s.e.m.) | depth | theory t_learn | t_learn error | "
        "outlier error at t = 0.4, 0.8, t1 (sim mean) | max outlier error, t >= 0.4 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        tl = np.asarray(r["t_learn"])
        m, sem = tl.mean(), tl.std(ddof=1) / np.sqrt(len(tl))
        t_out = np.asarray(r["t_out"])
        sim_out = np.asarray(r["outlier"]).mean(0)
        late = t_out >= 0.4 - 1e-9
        picks = [int(np.argmin(np.abs(t_out - x))) for x in (0.4, 0.8, t_out[-1])]
        for k, th in sorted(r["theories"].items(), key=lambda kv: int(kv[0])):
            o = np.asarray(th["outlier"])
            rel = (o - sim_out) / np.abs(sim_out)
            print(
                f"| {r['sigma']} | {r['N']}, {r['seeds']} | {m:.5f} ({sem / m:.2%}) | {k} | {th['t_learn']:.5f} | "
                f"{(th['t_learn'] - m) / m:+.2%} | "
                + ", ".join(f"{rel[i]:+.2%} ({sim_out[i]:.4f})" for i in picks)
                + f" | {np.max(np.abs(rel[late])):.2%} |"
            )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1024)
    ap.add_argument("--sigma", type=float, default=0.2)
    ap.add_argument("--c", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--t1", type=float, default=1.2)
    ap.add_argument("--outlier-every", type=int, default=20)
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", nargs="+", default=None)
    args = ap.parse_args()
    if args.table:
        table(args.table)
    else:
        run(args)


if __name__ == "__main__":
    main()
