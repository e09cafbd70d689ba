"""Stiff gradient flow: StiffFlow vs fixed-step RK4, side by side in one process (ratios).

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_stiff.py [--M 16] [--full 4] [--rk4-timed-steps 600]

Problem (issue 8): c = 0.03, N = 64, sigma = 0.1, networks 0..M-1 of seed 0, eta = 1, float64, flow time
0 -> 1.2, logged every 0.05. The flow's top rate grows to ~9050 (0.25/c^3 = 9259), so RK4 is stable only for
dt < 2.785/9050 = 3.08e-4; dt = 2.5e-4 (4800 steps) is the largest power-of-two step that is (5e-4 stalls at
the edge: flagged). Each contender is compiled first (a 1-step warm-up with the same shapes), then timed:
1. StiffFlow(dt=0.05, rtol=1e-6) on all M networks, the whole flow;
2. RK4 dt = 2.5e-4 on all M networks for `--rk4-timed-steps` steps, scaled to 4800 (a fixed step costs the
   same at every step: the same program on same-shaped data);
3. RK4 dt = 2.5e-4 and StiffFlow on the first `--full` networks, the whole flow (an unscaled ratio, and the
   reference loss curves StiffFlow is compared with at every log point).
RK4 dt = 2.5e-4's own error: 6e-6 against dt = 1.25e-4 (network 0; docs/core.md).
"""

from __future__ import annotations

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402


def _timed(pop, target, method, steps, n_log):
    """Wall time of a compiled run; its CPU time (all threads, one pinned core) goes to the log, as a check
    that the wall-time ratio was not made by other processes sharing the core."""
    jaxrnn.train(pop, target, method=method, steps=1, n_log=2, compute_spectra=False)  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    res = jaxrnn.train(pop, target, method=method, steps=steps, n_log=n_log, compute_spectra=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"   ({type(method).__name__}, M={pop.W.shape[0]}, {steps} steps: wall {wall:.1f} s, cpu {cpu:.1f} s)",
        flush=True,
    )
    return res, wall


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--c", type=float, default=0.03)
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--full", type=int, default=4)
    p.add_argument("--rk4-timed-steps", type=int, default=600)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    T, dt_rk4 = 1.2, 2.5e-4
    n_rk4 = int(round(T / dt_rk4))
    pop = jaxrnn.init_population(a.N, 0.1, 0, a.M)
    target = jaxrnn.leaky_integrator(a.c)
    stiff_method = jaxrnn.StiffFlow(0.05, rtol=a.rtol)
    stiff, t_stiff = _timed(pop, target, stiff_method, 24, 25)
    st = {k: float(v.mean()) for k, v in stiff.stats.items()}
    print(
        f"1. StiffFlow, M={a.M}: {t_stiff:.1f} s, status counts {np.bincount(stiff.status, minlength=3)}, per network: "
        f"accepted {st['accepted']:.0f}, rejected {st['rejected']:.1f}, grads {st['grads']:.0f}, hvps {st['hvps']:.0f}",
        flush=True,
    )
    _, t_part = _timed(pop, target, jaxrnn.GradientFlow(dt_rk4, checks=0), a.rk4_timed_steps, 2)
    t_rk4 = t_part * n_rk4 / a.rk4_timed_steps
    print(
        f"2. RK4 dt={dt_rk4}, M={a.M}: {t_part:.1f} s for {a.rk4_timed_steps} steps -> {t_rk4:.0f} s for {n_rk4}; "
        f"ratio RK4/StiffFlow = {t_rk4 / t_stiff:.1f}x",
        flush=True,
    )
    out = dict(
        M=a.M,
        N=a.N,
        c=a.c,
        rtol=a.rtol,
        time_stiff=t_stiff,
        time_rk4_scaled=t_rk4,
        ratio=t_rk4 / t_stiff,
        stiff_stats=st,
        status_stiff=stiff.status.tolist(),
    )
    if a.full:
        k = a.full
        sub = jax.tree.map(lambda x: x[:k], pop)
        stiff_k, t_stiff_k = _timed(sub, target, stiff_method, 24, 25)
        rk4, t_rk4_k = _timed(sub, target, jaxrnn.GradientFlow(dt_rk4), n_rk4, 25)
        err = np.abs(stiff.loss[:k] / rk4.loss - 1)
        err_k = np.abs(stiff_k.loss / rk4.loss - 1)
        top = np.nanmax(rk4.curvature, axis=1)
        out.update(
            time_stiff_full=t_stiff_k,
            time_rk4_full=t_rk4_k,
            ratio_full=t_rk4_k / t_stiff_k,
            max_rel_err=float(max(err.max(), err_k.max())),
            status_rk4=rk4.status.tolist(),
            final_L_over_L0=[float(x) for x in rk4.loss[:, -1] / rk4.loss[:, 0]],
            top_rate=float(top.max()),
            rk4_stable_dt=float(2.7853 / top.max()),
        )
        print(
            f"3. M={k}, whole flow: RK4 {t_rk4_k:.1f} s (status {rk4.status.tolist()}), StiffFlow {t_stiff_k:.1f} s: "
            f"ratio {t_rk4_k / t_stiff_k:.1f}x. StiffFlow vs RK4 loss at all 25 log points: max rel err "
            f"{err.max():.2e} (in the M={a.M} run), {err_k.max():.2e} (M={k}); final L/L0 "
            f"{np.round(out['final_L_over_L0'], 5).tolist()}; RK4's top rate {top.max():.0f} -> stable dt < "
            f"{out['rk4_stable_dt']:.3g}",
            flush=True,
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
