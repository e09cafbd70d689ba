"""Fock-space (N -> inf, sigma > 0) theory: time to solution and accuracy (docs/theory.md, "Fock theory speed").

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_fock.py [--json out.json]

Three measurements, each in this one process (so "first call" includes compilation):
1. one cell, depth 3, sigma = 0.3, c = 0.1 (t in [0, 3], 1001 save times, rtol 1e-8): first and warm call, t_learn
   against the independent N -> inf reference 0.516 +- 0.002 (extrapolated block-Krylov reductions up to N = 4096);
2. a 16-point sigma grid (0.05 ... 0.8) at depth 3 in one call: first call and warm;
3. the same grid with `Fock("auto", tol=1e-2, max_depth=4)`: the depth each cell needed.
Every call also solves depth k - 1 for the truncation-error estimate; that cost is included.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jaxrnn import theory
from jaxrnn.targets import leaky_integrator

REFERENCE = 0.516  # +- 0.002: the N -> inf t_learn at sigma = 0.3, c = 0.1 (see the module docstring)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--points", type=int, default=16, help="sigma grid size (default 16)")
    args = ap.parse_args()
    target = leaky_integrator(0.1)
    kw = dict(t1=3.0, n_save=1001)

    def one():
        return theory.solve(target, theory.Fock(3), sigma=0.3, **kw)

    print("| case | first call (s) | warm (s) | result |\n|---|---|---|---|", flush=True)
    show = lambda row: print(
        f"| {row['case']} | {row['first_s']:.1f} | {row['warm_s']:.1f} | {row['detail']} |", flush=True
    )
    r, first = timed(one)
    _, warm = timed(one)
    err = (float(r.t_learn) - REFERENCE) / REFERENCE
    rows = [
        dict(
            case="depth 3, sigma 0.3 (1 cell)",
            first_s=first,
            warm_s=warm,
            detail=f"t_learn {float(r.t_learn):.4f} ({100 * err:+.2f}% vs {REFERENCE}), "
            f"truncation estimate {float(r.extra['truncation_error']):.2%}, {int(r.extra['num_steps'])} steps",
        )
    ]
    show(rows[-1])
    sig = np.linspace(0.05, 0.8, args.points)

    def grid():
        return theory.solve(target, theory.Fock(3), sigma=sig, **kw)

    g, first = timed(grid)
    _, warm = timed(grid)
    rows.append(
        dict(
            case=f"depth 3, {sig.size}-point sigma grid (1 call)",
            first_s=first,
            warm_s=warm,
            detail=f"all ok {bool(g.ok.all())}, steps {int(g.extra['num_steps'].min())}-"
            f"{int(g.extra['num_steps'].max())}, truncation estimate max "
            f"{float(np.nanmax(g.extra['truncation_error'])):.2%}",
        )
    )
    show(rows[-1])
    a, first = timed(
        lambda: theory.solve(target, theory.Fock("auto", tol=1e-2, max_depth=4), sigma=sig, **kw)
    )
    depths = a.extra["depth"]
    rows.append(
        dict(
            case='Fock("auto", tol=1e-2, max_depth=4), same grid',
            first_s=first,
            warm_s=float("nan"),
            detail="depths " + " ".join(str(int(k)) for k in depths),
        )
    )
    show(rows[-1])
    print("\nsigma:   " + " ".join(f"{s:.2f}" for s in sig))
    print("t_learn: " + " ".join(f"{t:.3f}" for t in np.asarray(g.t_learn)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(
                    rows=rows,
                    sigma=sig.tolist(),
                    t_learn=np.asarray(g.t_learn).tolist(),
                    auto=depths.tolist(),
                ),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
