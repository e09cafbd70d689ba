"""Stiff gradient flow: StiffFlow vs fixed-step RK4, side by side in one process, both over the whole flow.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_stiff.py [--M 16] [--rtol 1e-6 2e-6] [--json F]

Problem (issue 8): c = 0.03, N = 64, sigma = 0.1, networks 0..M-1 of seed 0, eta = 1, float64, flow time
0 -> 1.2, logged every 0.05 (25 log points). The flow's top rate grows to ~9080 (0.25/c^3 = 9259), so RK4 is
stable only for dt < 2.785/9080 = 3.07e-4, and `GradientFlow` flags dt * rate >= 0.97 x 2.785.
Each contender is compiled first (a 1-step call of the same shapes), then timed over the whole flow (a fixed
step does not cost the same all along: the exact loss's Smith doubling stops adaptively, and needs more
doublings once the outlier sits at 1 - c = 0.97, so a few hundred early steps would underestimate RK4):
1. StiffFlow(dt=0.05, rtol) on all M networks, for each `--rtol`;
2. RK4 at dt = 2.5e-4 (4800 steps) on all M networks: the reference loss curves (its own error: 6e-6 against
   dt = 1.25e-4, network 0; docs/core.md), and the top rate it measured;
3. RK4 at the largest step that is not flagged: dt = 0.96 x 0.97 x 2.785 / (that top rate), rounded down to
   three digits; it is checked unflagged and as accurate as StiffFlow.
The ratio is the time of 3 over the time of 1; an error is the max relative deviation from 2 at every log
point of every network. Where RK4 at the step of 3 is less accurate than StiffFlow (it is: at the edge of
stability the stiff mode is barely damped), the step at which RK4 reaches StiffFlow's accuracy is smaller,
takes more steps and more time: the ratio is then a lower bound on the ratio at equal accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.methods import RK4_LIMIT  # noqa: E402

T, N_LOG = 1.2, 25


def _timed(pop, target, method, steps):
    """Wall time of a compiled run over the whole flow; its CPU time (all threads) goes to the log, as a
    check that the wall-time ratio was not made by other processes sharing the core."""
    jaxrnn.train(pop, target, method=method, steps=1, n_log=2, compute_spectra=False)  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    res = jaxrnn.train(pop, target, method=method, steps=steps, n_log=N_LOG, compute_spectra=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"   {type(method).__name__}(dt={method.dt:g}), M={pop.W.shape[0]}, {steps} steps: wall {wall:.1f} s, "
        f"cpu {cpu:.1f} s, status counts {np.bincount(res.status, minlength=3).tolist()}",
        flush=True,
    )
    return res, wall, cpu


def _rel_err(a, ref):
    return float(np.max(np.abs(a / ref - 1)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--c", type=float, default=0.03)
    p.add_argument("--rtol", type=float, nargs="+", default=[1e-6, 2e-6])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    pop = jaxrnn.init_population(a.N, 0.1, 0, a.M)
    target = jaxrnn.leaky_integrator(a.c)

    stiff_dt = T / (N_LOG - 1)
    stiff = {}
    for rtol in a.rtol:
        res, wall, cpu = _timed(pop, target, jaxrnn.StiffFlow(stiff_dt, rtol=rtol), N_LOG - 1)
        st = {k: float(v.mean()) for k, v in res.stats.items()}
        stiff[rtol] = (res, wall, cpu, st)
        print(
            f"1. StiffFlow rtol={rtol:g}: {wall:.1f} s; per network: accepted {st['accepted']:.1f}, rejected "
            f"{st['rejected']:.1f}, grads {st['grads']:.0f}, hvps {st['hvps']:.0f}; lockstep iterations "
            f"{st['iterations']:.0f}",
            flush=True,
        )
    dt_ref = 2.5e-4
    ref, t_ref, cpu_ref = _timed(pop, target, jaxrnn.GradientFlow(dt_ref), int(round(T / dt_ref)))
    top = float(np.nanmax(ref.curvature))
    dt_max = np.floor(0.96 * 0.97 * RK4_LIMIT / top * 1e7) / 1e7  # three significant digits, down
    print(
        f"2. RK4 dt={dt_ref:g} (reference): {t_ref:.1f} s; its top rate {top:.0f} -> unflagged dt < {dt_max:.3g}"
    )
    steps_max = int(np.ceil(T / dt_max))
    dt_max = T / steps_max  # land on t = 1.2 and on the same log times
    rk4, t_rk4, cpu_rk4 = _timed(pop, target, jaxrnn.GradientFlow(dt_max), steps_max)
    err_rk4 = _rel_err(rk4.loss, ref.loss)
    print(
        f"3. RK4 dt={dt_max:.4g} ({steps_max} steps): {t_rk4:.1f} s; max rel. loss error vs RK4 dt={dt_ref:g} over "
        f"all {N_LOG} log points of all {a.M} networks {err_rk4:.2e}; final L/L0 "
        f"{np.min(ref.loss[:, -1] / ref.loss[:, 0]):.2e}-{np.max(ref.loss[:, -1] / ref.loss[:, 0]):.2e}",
        flush=True,
    )
    runs = []
    for rtol, (res, wall, cpu, st) in stiff.items():
        err = _rel_err(res.loss, ref.loss)
        bound = "a lower bound (RK4 there is less accurate)" if err_rk4 > err else "RK4 there is as accurate"
        print(
            f"   StiffFlow rtol={rtol:g}: error {err:.2e}; RK4 dt={dt_max:.4g} / StiffFlow = {t_rk4 / wall:.1f}x wall, "
            f"{cpu_rk4 / cpu:.1f}x cpu ({bound}); RK4 dt={dt_ref:g} / StiffFlow = {t_ref / wall:.1f}x wall",
            flush=True,
        )
        runs.append(
            dict(
                rtol=rtol,
                time=wall,
                cpu=cpu,
                stats=st,
                status=res.status.tolist(),
                max_rel_err=err,
                ratio=t_rk4 / wall,
                ratio_cpu=cpu_rk4 / cpu,
                ratio_reference=t_ref / wall,
            )
        )
    out = dict(
        M=a.M,
        N=a.N,
        c=a.c,
        load_average=os.getloadavg(),
        stiff=runs,
        time_rk4_reference=t_ref,
        cpu_rk4_reference=cpu_ref,
        dt_reference=dt_ref,
        status_reference=ref.status.tolist(),
        top_rate=top,
        dt_rk4=dt_max,
        time_rk4=t_rk4,
        cpu_rk4=cpu_rk4,
        status_rk4=rk4.status.tolist(),
        max_rel_err_rk4=err_rk4,
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
