"""Throughput of the sigma = 0 theory on a (c x w x eta) damped-oscillator grid: one `theory.solve` call.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_theory.py --nc 25 --nw 20 --neta 20 --t1 20 --n-save 101

Prints cells, the first call (compile + solve) and a warm call (timed to results on the host), cells/s, the
fraction of cells whose solve succeeded and the step counts. eta enters by time rescaling (docs/theory.md,
"Fast sigma = 0 grids"), so the eta axis costs as many cells as any other axis but no extra compile.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxrnn import theory
from jaxrnn.targets import damped_oscillator


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nc", type=int, default=25)
    ap.add_argument("--nw", type=int, default=20)
    ap.add_argument("--neta", type=int, default=20)
    ap.add_argument("--t1", type=float, default=20.0)
    ap.add_argument("--n-save", type=int, default=101)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--atol", type=float, default=1e-10)
    ap.add_argument("--c-min", type=float, default=0.1)
    ap.add_argument("--c-max", type=float, default=0.5)
    ap.add_argument("--symmetric", action="store_true", help="the 5-ODE (exact for the N -> inf start)")
    args = ap.parse_args()

    c = np.geomspace(args.c_min, args.c_max, args.nc)
    w = np.linspace(0.25, 3.0, args.nw)
    eta = np.geomspace(0.5, 2.0, args.neta)
    C, Wg, E = np.meshgrid(c, w, eta, indexing="ij")
    target = damped_oscillator(C.ravel(), Wg.ravel())
    kw = dict(t1=args.t1, eta=E.ravel(), n_save=args.n_save, rtol=args.rtol, atol=args.atol)
    th = theory.Sigma0(symmetric=args.symmetric)
    t0 = time.perf_counter()
    theory.solve(target, th, **kw)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = theory.solve(target, th, **kw)
    t_warm = time.perf_counter() - t0
    B = C.size
    steps = r["num_steps"]
    print(
        f"grid {C.shape} = {B} cells, c in [{args.c_min}, {args.c_max}], t1 = {args.t1}, {args.n_save} save times, "
        f"rtol = {args.rtol}, {r.method}"
    )
    print(f"first call (compile + solve) {t_first:.2f} s; warm call {t_warm:.2f} s")
    print(
        f"throughput {B / t_warm:.0f} cells/s; solver success {np.mean(r.ok) * 100:.2f}%; "
        f"median steps {np.median(steps):.0f}, max {np.max(steps)}"
    )


if __name__ == "__main__":
    main()
