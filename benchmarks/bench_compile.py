"""Compile time and run time of jaxrnn's programs under XLA's default CPU options and under jaxrnn's
(`jaxrnn/_compile.py`), side by side in one process.

Workloads (the peers' benchmark settings, `benchmarks/peers/common.py`): float32, leaky integrator c = 0.1,
identical initial weights; the population gradient `vmap(loss.value_and_grad)` of
- exact: `ExactLoss()` at its defaults (resolved for the target), N = 64 and 128, M = 512;
- sampled: `SampledLoss(dt=0.1, batch=16, steps=200)`, N = 64, M = 512;
and the sigma = 0 theory grid (`theory.solve(..., Sigma0(symmetric=...))`, float64, c log-spaced in
[0.01, 0.3], t in [0, 3], 61 saves, rtol 1e-8, atol 1e-10) for the 8-ODE and the 5-ODE.

Each program is compiled once per option set (ahead of time, CPU seconds of `compile()`), then timed
round-robin over the option sets (`--rounds` rounds, best counts): gradients per second for the losses,
a warm solve for the theory. The JSON (`--out`) holds every number and the options used.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_compile.py
    python benchmarks/bench_compile.py --small      # tiny sizes: checks that the script runs (~30 s)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from common import B, CSTAR, DT, T, init_params  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import _compile  # noqa: E402


def _option_sets(role):
    """XLA's defaults against jaxrnn's options for `role` (the latter as this jaxlib accepts them)."""
    return {"xla_default": {}, "jaxrnn": _compile.compiler_options(role) or {}}


def losses(configs, rounds):
    rows = []
    for mode, N, M in configs:
        W, u, v = (jnp.asarray(a) for a in init_params(N, M))
        model = jaxrnn.LinearRNN(W, u, v)
        target = jaxrnn.leaky_integrator(CSTAR, dtype=jnp.float32)
        loss = jaxrnn.SampledLoss(dt=DT, batch=B, steps=T) if mode == "sampled" else jaxrnn.ExactLoss()
        loss = loss.resolved(target)
        keys = jax.random.split(jax.random.key(0), M)

        def grads(m, k, loss=loss, target=target):
            return jax.vmap(lambda mm, kk: loss.value_and_grad(mm, target, kk))(m, k)

        compiled, compile_s = {}, {}
        for name, opts in _option_sets(_compile.HOT).items():
            lowered = jax.jit(grads).lower(model, keys)
            t0 = time.process_time()
            compiled[name] = lowered.compile(compiler_options=opts)
            compile_s[name] = time.process_time() - t0
        out = {name: np.asarray(fn(model, keys)[0]) for name, fn in compiled.items()}
        agree = float(np.max(np.abs(out["jaxrnn"] - out["xla_default"]) / np.abs(out["xla_default"])))
        n = int(np.clip(round(2.0 * 512 / M / (N / 64) ** 3), 1, 20))  # ~1 s per timing at N = 64, M = 512
        best = dict.fromkeys(compiled, np.inf)
        for _ in range(rounds):
            for name, fn in compiled.items():
                jax.block_until_ready(fn(model, keys))
                t0 = time.perf_counter()
                for _ in range(n):
                    res = fn(model, keys)
                jax.block_until_ready(res)
                best[name] = min(best[name], (time.perf_counter() - t0) / n)
        row = dict(
            workload=f"{mode} N={N} M={M}",
            compile_s=compile_s,
            grads_per_s={k: M / v for k, v in best.items()},
            loss_rel_diff=agree,
        )
        rows.append(row)
        print(
            f"{row['workload']:>22}: compile {compile_s['xla_default']:.2f} s -> {compile_s['jaxrnn']:.2f} s, "
            f"grads/s {row['grads_per_s']['xla_default']:.0f} -> {row['grads_per_s']['jaxrnn']:.0f} "
            f"(loss rel. diff {agree:.1e})",
            flush=True,
        )
    return rows


def theory_grids(cells, rounds):
    """The sigma = 0 grid solver: its compile time and warm solve per option set."""
    from jaxrnn import theory
    from jaxrnn.theory import _sigma0

    jax.config.update("jax_enable_x64", True)
    target = jaxrnn.leaky_integrator(np.geomspace(0.01, 0.3, cells))
    kw = dict(t1=3.0, n_save=61, rtol=1e-8, atol=1e-10)
    saved = dict(_compile._CPU_OPTIONS)
    rows = []
    try:
        for symmetric in (False, True):
            first, warm, loss = {}, {}, {}
            for _ in range(rounds):
                for name, opts in _option_sets(_compile.ELEMENTWISE).items():
                    _compile._CPU_OPTIONS[_compile.ELEMENTWISE] = opts
                    _sigma0._COMPILED.clear()
                    t0 = time.process_time()
                    theory.solve(target, theory.Sigma0(symmetric=symmetric), **kw)
                    t1 = time.process_time()
                    res = theory.solve(target, theory.Sigma0(symmetric=symmetric), **kw)
                    t2 = time.process_time()
                    first[name] = min(first.get(name, np.inf), t1 - t0)
                    warm[name] = min(warm.get(name, np.inf), t2 - t1)
                    loss[name] = np.asarray(res.loss)
            diff = float(
                np.nanmax(np.abs(loss["jaxrnn"] - loss["xla_default"]) / np.abs(loss["xla_default"]))
            )
            row = dict(
                workload=f"theory {'5-ODE' if symmetric else '8-ODE'} {cells} cells",
                first_call_s=first,
                warm_s=warm,
                loss_rel_diff=diff,
            )
            rows.append(row)
            print(
                f"{row['workload']:>22}: first call {first['xla_default']:.2f} s -> {first['jaxrnn']:.2f} s, "
                f"warm {warm['xla_default']:.2f} s -> {warm['jaxrnn']:.2f} s (loss rel. diff {diff:.1e})",
                flush=True,
            )
    finally:
        _compile._CPU_OPTIONS.clear()
        _compile._CPU_OPTIONS.update(saved)
        _sigma0._COMPILED.clear()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--small", action="store_true", help="tiny sizes, to check the script runs")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if jax.default_backend() != "cpu":
        sys.exit("bench_compile measures the CPU backend's options; run it with JAX_PLATFORMS=cpu")
    configs = [("exact", 64, 512), ("exact", 128, 512), ("sampled", 64, 512)]
    if a.small:
        configs, a.cells, a.rounds = [("exact", 8, 4), ("sampled", 8, 4)], 16, 1
    print(f"jax {jax.__version__}, jaxrnn options: {_compile.compiler_options(_compile.HOT)}", flush=True)
    rows = losses(configs, a.rounds) + theory_grids(a.cells, a.rounds if not a.small else 1)
    env = dict(
        jax=jax.__version__,
        machine=platform.machine(),
        processor=platform.processor(),
        load_average=os.getloadavg(),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        options={r: _compile.compiler_options(r) for r in (_compile.HOT, _compile.ELEMENTWISE)},
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(env=env, rows=rows), f, indent=1)
        print("wrote", a.out)


if __name__ == "__main__":
    main()
