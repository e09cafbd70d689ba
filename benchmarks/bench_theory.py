"""Throughput of the sigma = 0 theory: one vmapped, jitted diffrax call over a (c x w x eta) grid.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 /work/venv/bin/python benchmarks/bench_theory.py --nc 25 --nw 20 --neta 20 --t1 20 --n-save 101

Prints cells, wall time of the warm call, cells/s and the fraction of cells whose solve succeeded.
Hygiene: one jit around the whole grid, compiled ahead of time (lower().compile(), so the timed call
includes no tracing/compilation), block_until_ready.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

from jaxrnn.targets import damped_oscillator
from jaxrnn.theory import eight_state_infinite
from jaxrnn.theory._solve import _flatten_target, _sigma0_batch


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
    args = ap.parse_args()

    c = np.geomspace(args.c_min, args.c_max, args.nc)
    w = np.linspace(0.25, 3.0, args.nw)
    eta = np.geomspace(0.5, 2.0, args.neta)
    C, Wg, E = np.meshgrid(c, w, eta, indexing="ij")
    batch = C.shape
    B = C.size
    target = _flatten_target(damped_oscillator(C.ravel(), Wg.ravel()), (B,))
    e = jnp.asarray(E.ravel())
    y0 = jnp.broadcast_to(eight_state_infinite(), (B, 8))
    ts = jnp.linspace(0.0, args.t1, args.n_save)
    kw = dict(rtol=args.rtol, atol=args.atol, max_steps=100_000, symmetric=False)

    # compile ahead of time (no throw-away solve of the whole grid), then one timed warm call
    t0 = time.perf_counter()
    compiled = _sigma0_batch.lower(target, e, y0, ts, **kw).compile()
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(target, e, y0, ts))
    t_warm = time.perf_counter() - t0
    ok = np.asarray(out["ok"])
    print(f"grid {batch} = {B} cells, c in [{args.c_min}, {args.c_max}], t1 = {args.t1}, {args.n_save} save times, rtol = {args.rtol}")
    print(f"AOT compile {t_first:.2f} s; compiled call (timed, block_until_ready) {t_warm:.2f} s")
    print(f"throughput {B / t_warm:.0f} cells/s; solver success {ok.mean() * 100:.2f}%; "
          f"median steps {np.median(np.asarray(out['num_steps'])):.0f}, max {np.max(np.asarray(out['num_steps']))}")
    print(f"devices: {jax.devices()}")


if __name__ == "__main__":
    main()
