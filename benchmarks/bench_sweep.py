"""Throughput of a sweep chunk against a naive per-network loop over `jaxrnn.train`.

Sweep: `jaxrnn.sweep._runner.run_chunk`, one compiled vmapped program over the chunk's networks (the
same code path as `jaxrnn run`, minus the store). Naive: for each network, build it alone (M = 1) and
call `jaxrnn.train` on it, in a Python loop; `train`'s compiled program is reused (same shapes), so
the naive loop pays one compile too. Both train the same networks (same keys, same grid) with the same
gradient flow; the script checks they end at the same t_learn, then prints networks/s and the ratio,
compile time apart.

    OPENBLAS_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_sweep.py [--N 32] [--seeds 8] [--steps 200]
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=32)
    p.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    a = p.parse_args()
    jax.config.update("jax_enable_x64", a.dtype == "float64")

    from jaxrnn.sweep import plan_sweep, spec_from_dict
    from jaxrnn.sweep._runner import (
        _mesh,
        _networks,
        _targets,
        build_population,
        make_loss,
        make_method,
        run_chunk,
    )
    from jaxrnn.train import train

    spec = spec_from_dict(
        {
            "name": "bench",
            "grid": {"N": [a.N], "sigma": a.sigma, "c": [0.5], "seed": {"count": a.seeds}},
            "train": {"dt": 0.01, "steps": a.steps, "n_log": 21, "dtype": a.dtype},
            "theory": {"overlay": "none"},
        }
    )
    plan = plan_sweep(spec, chunk_size=len(a.sigma) * a.seeds, n_devices=1)
    (chunk,) = plan.chunks
    M = len(chunk.cells) * a.seeds
    mesh, loss = _mesh(1), make_loss(spec)

    def sweep_once():
        return run_chunk(spec, chunk, chunk.cells, mesh, loss_obj=loss)["t_learn"].ravel()

    net = _networks(spec, chunk.cells)
    method = make_method(spec, "flow")

    def naive_once(i):
        one = {k: v[i : i + 1] for k, v in net.items()}
        model, _ = build_population(spec, a.N, one)
        res = train(
            model,
            _targets(spec, one["c"], one["w"]),
            eta=one["eta"],
            method=method,
            loss=loss,
            steps=spec.train.steps,
            log_steps=spec.log_steps(),
            trainable=spec.train.trainable,
        )
        return float(np.asarray(res.t_learn)[0])

    t0 = time.perf_counter()
    sweep_once()
    first_sweep = time.perf_counter() - t0
    t0 = time.perf_counter()
    tl_sweep = sweep_once()
    sweep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    naive_once(0)
    first_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    tl_naive = np.array([naive_once(i) for i in range(M)])
    naive_s = time.perf_counter() - t0

    np.testing.assert_allclose(tl_naive, tl_sweep, rtol=1e-6, equal_nan=True)
    print(
        f"{M} networks, N = {a.N}, sigma = {a.sigma}, {a.steps} RK4 flow steps, {a.dtype}, backend {jax.default_backend()}"
    )
    print(
        f"sweep chunk (M = {M}, one program):  {M / sweep_s:8.2f} networks/s  ({sweep_s:.2f} s; first call incl. compile {first_sweep:.1f} s)"
    )
    print(
        f"naive loop (M = 1 train per network): {M / naive_s:8.2f} networks/s  ({naive_s:.2f} s; first call incl. compile {first_naive:.1f} s)"
    )
    print(f"ratio sweep / naive: {naive_s / sweep_s:.1f}x   (t_learn agree to 1e-6)")


if __name__ == "__main__":
    main()
