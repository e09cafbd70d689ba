"""sigma = 0 theory on a whole grid, side by side with scipy `solve_ivp` (LSODA) one cell at a time.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_theory_vs_scipy.py 2000 100 --check 200

Grid: leaky integrator, c in [0.01, 0.3] (log-spaced, `n_cells`), t in [0, 3], 61 save times, rtol 1e-8,
atol 1e-10. Contenders, in one process on whatever core it is pinned to:
- `jaxrnn.theory.solve(..., Sigma0(symmetric))` over the whole grid, 5-ODE and 8-ODE: first call (compile)
  and a warm call (timed, results on the host);
- scipy LSODA on the 5-ODE with a central-difference gradient of the closed-form loss (what a researcher
  would write; the same peer as the reference measurement), on `peer_cells` cells spread over the same range.
`--check K`: also the previous solver (vmapped diffrax Kvaerno5 of `solve_five`, same tolerances) on K cells
spread over the range, and the max relative difference of t_learn against it and against LSODA.
The last line is the ratio of cells/s (best jaxrnn / LSODA).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from scipy.integrate import solve_ivp

import jaxrnn
from jaxrnn import theory as th
from jaxrnn.observables import learning_time

RATES = np.array([1.0, 2.0, 1.0, 2.0, 2.0])  # inverse rates (metric) of the 5-ODE


def _peer_loss(x, c):
    al, be, de, p, q = x
    T = al + de
    D = al * de + be**2
    m0 = p * p - q * q
    m1 = al * p * p + 2 * be * p * q - de * q * q
    a1, a0, b1, b0 = 2 - T, 1 - T + D, m0, m0 + m1 - T * m0
    kk = (b1**2 * a0 + b0**2) / (2 * a0 * a1)
    cross = (b1 * c + b0) / (c * c + a1 * c + a0)
    return 0.5 * (kk - 2 * cross + 1 / (2 * c))


def _peer_rhs(t, x, c):
    g = np.empty(5)
    h = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = h
        g[i] = (_peer_loss(x + e, c) - _peer_loss(x - e, c)) / (2 * h)
    return -g / RATES


def peer(cs, ts):
    """scipy LSODA, one cell at a time; returns (cells/s, t_learn)."""
    x0 = np.array([0, 0, 0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    t0 = time.perf_counter()
    sols = [
        solve_ivp(_peer_rhs, (0, ts[-1]), x0, method="LSODA", args=(c,), rtol=1e-8, atol=1e-10, t_eval=ts)
        for c in cs
    ]
    dt = time.perf_counter() - t0
    loss = np.array([[_peer_loss(x, c) for x in s.y.T] for s, c in zip(sols, cs)])
    return len(cs) / dt, learning_time(ts, loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n_cells", type=int, nargs="?", default=2000)
    ap.add_argument("peer_cells", type=int, nargs="?", default=100)
    ap.add_argument(
        "--check", type=int, default=0, help="cells for the previous-solver (Kvaerno5) comparison"
    )
    args = ap.parse_args()
    cs = np.logspace(-2, np.log10(0.3), args.n_cells)
    ts = np.linspace(0.0, 3.0, 61)
    kw = dict(t1=3.0, ts=ts, rtol=1e-8, atol=1e-10)
    rates, res = {}, {}
    for sym in (True, False):
        name = "5-ODE" if sym else "8-ODE"
        t0 = time.perf_counter()
        th.solve(jaxrnn.leaky_integrator(cs), th.Sigma0(sym), **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = th.solve(jaxrnn.leaky_integrator(cs), th.Sigma0(sym), **kw)
        warm = time.perf_counter() - t0
        rates[name], res[name] = args.n_cells / warm, r
        print(
            f"jaxrnn {name}: {args.n_cells / warm:.0f} cells/s warm ({args.n_cells} cells in {warm:.3f} s; first call "
            f"{first:.1f} s incl. compile), ok {np.mean(r.ok):.3f}, steps median {np.median(r['num_steps']):.0f} "
            f"max {np.max(r['num_steps'])}",
            flush=True,
        )
    r5 = res["5-ODE"]
    print(
        f"5-ODE vs 8-ODE: max |t_learn rel diff| {np.max(np.abs(res['8-ODE'].t_learn / r5.t_learn - 1)):.2e}"
    )
    pick = np.unique(np.linspace(0, args.n_cells - 1, args.peer_cells).round().astype(int))
    prate, ptl = peer(cs[pick], ts)
    print(
        f"scipy LSODA: {prate:.1f} cells/s ({len(pick)} cells, t in [0,3], rtol 1e-8); "
        f"max |t_learn rel diff| vs jaxrnn 5-ODE {np.max(np.abs(ptl / r5.t_learn[pick] - 1)):.2e}",
        flush=True,
    )
    if args.check:
        from jaxrnn.theory._sigma0 import eight_state_infinite, five_state_from_eight, solve_five
        from jaxrnn.theory._solve import _flatten_target

        chk = np.unique(np.linspace(0, args.n_cells - 1, args.check).round().astype(int))
        with jax.enable_x64(True):
            tg = _flatten_target(jaxrnn.leaky_integrator(cs[chk]), (len(chk),))
            z0 = five_state_from_eight(eight_state_infinite(jax.numpy.float64))[0]
            f = jax.jit(
                jax.vmap(
                    lambda t: solve_five(t, z0, 1.0, jax.numpy.asarray(ts), rtol=1e-8, atol=1e-10)["loss"]
                )
            )
            t0 = time.perf_counter()
            old = np.asarray(f(tg))
            dt = time.perf_counter() - t0
        d = np.max(np.abs(learning_time(ts, old) / r5.t_learn[chk] - 1))
        print(
            f"previous solver (vmapped Kvaerno5, first call incl. compile {dt:.1f} s) on {len(chk)} cells: "
            f"max |t_learn rel diff| {d:.2e}; max |loss rel diff| {np.max(np.abs(old / r5.loss[chk] - 1)):.2e}"
        )
    best = max(rates, key=rates.get)
    print(
        f"theory sigma=0 grid: jaxrnn {rates[best]:.0f} cells/s ({best}) vs scipy LSODA {prate:.1f} cells/s = "
        f"{rates[best] / prate:.0f}x"
    )


if __name__ == "__main__":
    main()
