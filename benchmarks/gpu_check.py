"""One-command device check: matmul peak, trainer throughput, a 10^4-network sweep and theory cells/s.

    python benchmarks/gpu_check.py                 # on a GPU: under 5 minutes; table + benchmarks/data/gpu_check.json
    python benchmarks/gpu_check.py --small         # tiny sizes on CPU (< 60 s), to test the script itself

Sections (all through jaxrnn's public API; `--sections` picks some):
- `peak`: measured float32 matmul rate of the device (jit'd n x n @ n x n, best of 5), at JAX's default matmul
  precision (on NVIDIA GPUs that may use TF32) and at `precision="highest"` (true float32).
- `grid`: exact (`ExactLoss()`, its defaults) and sampled (`SampledLoss(dt=0.1, batch=16, steps=200)`) throughput in
  network-gradient-steps/s, `GradientDescent()` at eta = 0.02, c = 0.1 leaky integrator, sigma = 0.1, float32,
  for N in {64, 128, 256} and M in {512, 2048, 8192} while it fits (an out-of-memory cell is recorded and the larger
  M of that N skipped). A cell times `train(steps=1 + n)` minus `train(steps=1)` (both warm): the marginal cost of a
  step without the monitor evaluations every call makes; its first call (compile + set-up) is reported apart.
  Achieved FLOP/s of the exact step counts the flops of the algorithm `ExactLoss()` runs: on its fast path
  (`fast_exact_step_flops`) one LU + inverse, `factored` squarings of F, K - factored dense doublings of 5
  N^3-products, the O P product, with K the mean doublings it takes on the timed networks (measured); on the
  reference path (`exact_step_flops`) the Cayley transform, K fixed doublings, 2 complex LUs per pole and O P.
- `sweep`: 10^4 networks x N = 128 x 10^3 exact GradientDescent steps in one `train` call (11 log points);
  wall time excluding compile (a warm call) and including it (plus the first, compiling call of the same shapes).
  If a 5-step probe projects more than `sweep_cap_s` (100 s), fewer steps run and the times are scaled to 10^3
  steps (`extrapolated: true`, `steps_run` in the JSON).
- `theory`: `jaxrnn.theory.solve` over a sigma = 0 grid of 2000 cells, c log-spaced in [0.01, 0.3], t in [0, 3],
  61 save times, rtol 1e-8 (float64): cells/s of a warm call, first call apart.
`--budget` seconds (default 270; 50 with --small) bounds the run: the grid's remaining cells (all but the first of
each loss) are skipped once it is spent (recorded as skipped), so the whole check stays under 5 minutes on one device.
With --small the sweep's shapes (M = 32, N = 8) are the grid's first exact cell, so they share one compile.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

import jaxrnn

HERE = os.path.dirname(os.path.abspath(__file__))
C, SIGMA, ETA = 0.1, 0.1, 0.02
SAMPLED = dict(dt=0.1, batch=16, steps=200)
FULL = dict(
    peak_n=8192,
    Ns=(64, 128, 256),
    Ms=(512, 2048, 8192),
    sweep=(10_000, 128, 1000),
    theory_cells=2000,
    target_s=1.0,
    budget=270.0,
    sweep_cap_s=100.0,
    sampled=SAMPLED,
)
SMALL = dict(
    peak_n=512,
    Ns=(8, 16),
    Ms=(32, 64),
    sweep=(32, 8, 20),
    theory_cells=8,
    target_s=0.05,
    budget=50.0,
    sweep_cap_s=20.0,
    sampled=dict(dt=0.1, batch=4, steps=20),
)
SECTIONS = ("peak", "grid", "sweep", "theory")


def _train_fn():
    """`jaxrnn.train`, the function. Since the lazy `jaxrnn/__init__` (82e6805), importing the submodule
    `jaxrnn.train` (e.g. by touching `jaxrnn.ExactLoss`) rebinds the package attribute `train` to that module;
    until that is fixed, take the function from it."""
    f = jaxrnn.train
    return f if callable(f) else f.train


def is_oom(e: Exception) -> bool:
    s = str(e)
    return "RESOURCE_EXHAUSTED" in s or "out of memory" in s.lower() or isinstance(e, MemoryError)


def exact_doublings(target) -> int:
    """The Smith doublings `train` resolves for `ExactLoss()` on this target."""
    loss = jaxrnn.ExactLoss()
    try:
        return int(loss.resolved(target).doublings)
    except (
        Exception
    ):  # resolved() moved: the documented rule, log2(p / kappa) + 6 with kappa = c_min / 4, p = 1
        return max(4, math.ceil(math.log2(1.0 / (C / 4))) + 6)


def exact_step_flops(N: int, K: int, poles: int = 1) -> float:
    """Flops of one exact gradient step of one network (real-flop equivalents; a complex flop counts 4).

    Cayley F = (I - A)^{-1}(I + A): LU 2/3 N^3 + N right-hand sides 2 N^3 + product 2 N^3;
    K Smith doublings, each P += F P F^T, O += F^T O F (4 products) and F <- F^2 (1): 10 K N^3;
    resolvents x = (s I - A)^{-1} u, y = (s I - A)^{-T} v per pole: 2 complex LUs, 4 x 2/3 N^3 each;
    adjoint gradient O P: 2 N^3. O(N^2) terms (matvecs, triangular solves, outer products) are left out.
    """
    return (2 / 3 + 2 + 2 + 10 * K + poles * 2 * 4 * 2 / 3 + 2) * N**3


def fast_exact_step_flops(N: int, K: float, factored: int | None = None) -> float:
    """Flops of one exact step on `ExactLoss(fast=True)`'s path (`gramians_adaptive`): one LU (2/3 N^3) and the
    inverse R from it (2 N^3); the first `factored` doublings (default min(4, floor(log2 N) - 1)) square F only
    (2 N^3 each; the rank-2^k factors are O(N^2 2^k)); the remaining K - factored dense doublings 10 N^3 each; the
    adjoint gradient's O P product 2 N^3. Resolvents come from the powers of F by matvecs (O(N^2), not counted).
    This is the vmapped layout's algorithm (every accelerator); on a CPU from N = 64 `train` runs one network at a
    time with the Neumann inverse instead, whose count is `benchmarks/bench_step.py`'s."""
    f = max(1, min(4, int(math.floor(math.log2(N))) - 1)) if factored is None else factored
    f = min(f, K)
    return (2 / 3 + 2 + 2 * f + 10 * max(K - f, 0) + 2) * N**3


def measured_doublings(model, target, max_doublings: int):
    """Mean doublings the fast path takes on these networks (it stops on |F^(2^k)|, so K depends on W)."""
    from jaxrnn.loss import population_loss_and_grad_fast  # not in the top-level API: only to count flops

    def one(W, u, v):
        m = jaxrnn.LinearRNN(W, u, v)
        return population_loss_and_grad_fast(m, target, max_doublings=max_doublings, return_doublings=True)[
            -1
        ]

    return float(np.mean(np.asarray(jax.jit(jax.vmap(one))(model.W, model.u, model.v))))


def step_flops(model, target, N: int) -> dict:
    """The flop count of the exact step `ExactLoss()` runs now, with what it rests on."""
    loss = jaxrnn.ExactLoss()
    K = exact_doublings(target)
    if getattr(loss, "fast", False) and getattr(loss, "gramian", "dense") == "dense":
        try:
            Km = measured_doublings(model, target, K)
            return dict(
                flop_model="fast (adaptive doublings, factored start)",
                doublings=Km,
                max_doublings=K,
                flops_per_net_step=fast_exact_step_flops(N, Km),
            )
        except Exception as e:  # noqa: BLE001
            return dict(
                flop_model=f"unknown: fast path, doublings not measurable ({str(e)[:100]})",
                doublings=None,
                max_doublings=K,
                flops_per_net_step=float("nan"),
            )
    return dict(
        flop_model="dense reference (fixed doublings)", doublings=K, flops_per_net_step=exact_step_flops(N, K)
    )


def timed(f):
    t0 = time.perf_counter()
    out = f()
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


# ----------------------------------------------------------------------------- peak
def peak(n: int) -> dict:
    out = {}
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((n, n)), jnp.float32)
    for name, prec in (("default", None), ("highest", jax.lax.Precision.HIGHEST)):
        f = jax.jit(lambda x, y, p=prec: jnp.matmul(x, y, precision=p))
        f(a, b).block_until_ready()
        ts = [timed(lambda f=f: f(a, b))[0] for _ in range(5)]
        out[f"float32_{name}_gflops"] = 2.0 * n**3 / min(ts) / 1e9
    out["n"] = n
    return out


# ----------------------------------------------------------------------------- trainer
def _train(model, target, loss, steps, n_log=2):
    return _train_fn()(
        model,
        target,
        eta=ETA,
        method=jaxrnn.GradientDescent(),
        loss=loss,
        steps=steps,
        n_log=n_log,
        compute_spectra=False,
    )


def grid_cell(mode: str, N: int, M: int, cfg: dict) -> dict:
    target = jaxrnn.leaky_integrator(C, dtype=jnp.float32)
    model = jaxrnn.init_population(N=N, sigma=SIGMA, seed=0, indices=M, dtype=jnp.float32)
    loss = jaxrnn.ExactLoss() if mode == "exact" else jaxrnn.SampledLoss(**cfg["sampled"])
    first, res = timed(lambda: _train(model, target, loss, 1))  # compile + set-up + one step + two monitors
    t1, _ = timed(lambda: _train(model, target, loss, 1))
    n = int(min(10_000, max(1, round(cfg["target_s"] / max(t1 / 3, 1e-6)))))
    for _ in range(6):  # grow n until the n steps clearly outweigh a call's fixed cost (monitors, dispatch)
        t1, _ = timed(lambda: _train(model, target, loss, 1))
        tn, _ = timed(lambda n=n: _train(model, target, loss, 1 + n))
        if tn - t1 > max(0.5 * t1, cfg["target_s"] / 2) or n >= 100_000:
            break
        n *= 4
    best = math.inf
    for _ in range(2):
        t1, _ = timed(lambda: _train(model, target, loss, 1))
        tn, res = timed(lambda: _train(model, target, loss, 1 + n))
        best = min(best, max(tn - t1, 1e-9) / n)
    row = dict(
        mode=mode,
        N=N,
        M=M,
        status="ok",
        steps_timed=n,
        step_s=best,
        net_steps_per_s=M / best,
        first_call_s=first,
        final_loss=float(np.nanmean(np.asarray(res.loss)[:, -1])),
    )
    if mode == "exact":  # doublings counted on the networks as they were at the timed steps
        fc = step_flops(res.final, target, N)
        row.update(fc, achieved_gflops=fc["flops_per_net_step"] * M / best / 1e9)
    return row


def grid(cfg: dict, deadline: float, modes=("exact", "sampled")) -> list:
    """Sizes in increasing order, both losses at each; the first cell of each loss always runs, later cells only
    before `deadline`; an OOM skips the larger M of that (loss, N)."""
    rows, oom = [], set()
    for N in cfg["Ns"]:
        for M in cfg["Ms"]:
            for mode in modes:
                first = N == cfg["Ns"][0] and M == cfg["Ms"][0]
                if (mode, N) in oom or (time.perf_counter() > deadline and not first):
                    status = "skipped (oom at smaller M)" if (mode, N) in oom else "skipped (budget)"
                    rows.append(dict(mode=mode, N=N, M=M, status=status))
                    continue
                try:
                    rows.append(grid_cell(mode, N, M, cfg))
                except Exception as e:  # noqa: BLE001 - an OOM (or a failure) is a result, the check goes on
                    if is_oom(e):
                        oom.add((mode, N))
                    rows.append(
                        dict(
                            mode=mode,
                            N=N,
                            M=M,
                            status="oom" if is_oom(e) else f"error: {str(e).splitlines()[0][:200]}",
                        )
                    )
                print(_grid_line(rows[-1]), flush=True)
    return sorted(rows, key=lambda r: (r["mode"] != "exact", r["N"], r["M"]))


def _grid_line(r):
    if r["status"] != "ok":
        return f"  {r['mode']:8s} N={r['N']:4d} M={r['M']:6d}  {r['status']}"
    fl = f"  {r['achieved_gflops']:9.1f} GFLOP/s" if "achieved_gflops" in r else ""
    return (
        f"  {r['mode']:8s} N={r['N']:4d} M={r['M']:6d}  {r['net_steps_per_s']:12.1f} net-steps/s{fl}"
        f"  first call {r['first_call_s']:.1f} s"
    )


def sweep(cfg: dict) -> dict:
    M, N, steps = cfg["sweep"]
    target = jaxrnn.leaky_integrator(C, dtype=jnp.float32)
    model = jaxrnn.init_population(N=N, sigma=SIGMA, seed=0, indices=M, dtype=jnp.float32)
    loss = jaxrnn.ExactLoss()
    cold, _ = timed(lambda: _train(model, target, loss, 1, n_log=2))  # compiles the shapes the sweep uses
    t1, _ = timed(lambda: _train(model, target, loss, 1, n_log=2))
    t5, _ = timed(lambda: _train(model, target, loss, 6, n_log=2))
    per_step = max(t5 - t1, 1e-9) / 5
    run = steps
    if (
        per_step * steps > cfg["sweep_cap_s"]
    ):  # keep the check within its budget: run a part, scale it (flagged)
        run = max(10, int(cfg["sweep_cap_s"] / per_step))
    warm, res = timed(lambda: _train(model, target, loss, run, n_log=11))
    scale = steps / run
    fc0, fc1 = step_flops(model, target, N), step_flops(res.final, target, N)  # doublings grow as W learns
    fl = 0.5 * (fc0["flops_per_net_step"] + fc1["flops_per_net_step"]) * M * steps
    L = np.asarray(res.loss)
    return dict(
        M=M,
        N=N,
        steps=steps,
        steps_run=run,
        extrapolated=run < steps,
        method="GradientDescent",
        eta=ETA,
        loss="ExactLoss()",
        wall_excl_compile_s=warm * scale,
        wall_incl_compile_s=cold + warm * scale,
        first_call_s=cold,
        net_steps_per_s=M * steps / (warm * scale),
        achieved_gflops=fl / (warm * scale) / 1e9,
        loss_drop_median=float(np.nanmedian(L[:, 0] / L[:, -1])),
        flop_model=fc1["flop_model"],
        doublings_start=fc0["doublings"],
        doublings_end=fc1["doublings"],
        status="ok",
    )


def theory(cfg: dict) -> dict:
    from jaxrnn import theory as th

    n = cfg["theory_cells"]
    cs = np.logspace(-2, np.log10(0.3), n)
    want = dict(t1=3.0, n_save=61, rtol=1e-8, atol=1e-10)
    params = inspect.signature(th.solve).parameters
    kw = {
        k: v for k, v in want.items() if k in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    }
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        target = jaxrnn.leaky_integrator(cs)
        first, _ = timed(lambda: th.solve(target, **kw))
        warm, r = timed(lambda: th.solve(target, **kw))
    finally:
        jax.config.update("jax_enable_x64", prev)
    ok = np.asarray(getattr(r, "ok", np.ones(n, bool)))
    return dict(
        cells=n,
        kwargs={k: v for k, v in kw.items()},
        first_call_s=first,
        warm_s=warm,
        cells_per_s=n / warm,
        ok_fraction=float(np.mean(ok)),
        method=getattr(r, "method", None),
        status="ok",
    )


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny sizes (CPU test of the script, < 60 s)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    ap.add_argument("--modes", default="exact,sampled", help="grid losses: exact, sampled or both")
    ap.add_argument(
        "--budget", type=float, default=None, help="seconds before the grid's remaining cells are skipped"
    )
    ap.add_argument(
        "--sweep-cap", type=float, default=None, help="seconds the sweep may run before it is scaled"
    )
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/data/gpu_check[_small].json)")
    args = ap.parse_args(argv)
    cfg = dict(SMALL if args.small else FULL)
    if args.budget is not None:
        cfg["budget"] = args.budget
    if args.sweep_cap is not None:
        cfg["sweep_cap_s"] = args.sweep_cap
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        print(f"--sections: unknown {bad}; choose from {SECTIONS}", file=sys.stderr)
        return 2
    out_path = args.out or os.path.join(
        HERE, "data", "gpu_check_small.json" if args.small else "gpu_check.json"
    )
    t_start = time.perf_counter()
    dev = jax.devices()[0]
    info = dict(
        device=str(dev),
        platform=dev.platform,
        device_kind=getattr(dev, "device_kind", ""),
        n_devices=jax.device_count(),
        jax=jax.__version__,
        jaxrnn=jaxrnn.__version__,
        small=args.small,
        host=platform.node(),
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        config={k: v for k, v in cfg.items()},
    )
    print(
        f"device: {info['device_kind'] or info['device']} ({info['platform']}), jax {jax.__version__}",
        flush=True,
    )
    result = dict(info=info)

    def save():
        result["total_s"] = time.perf_counter() - t_start
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1, default=str)

    def guarded(name, fn):
        try:
            result[name] = fn()
        except Exception as e:  # noqa: BLE001 - record and go on to the next section
            result[name] = dict(
                status=("oom" if is_oom(e) else "error") + f": {str(e).splitlines()[0][:300]}"
            )
        print(f"[{name}] {time.perf_counter() - t_start:.1f} s", flush=True)
        save()

    if "peak" in sections:
        guarded("peak", lambda: peak(cfg["peak_n"]))
    # the sweep and theory before the grid: the grid is what the budget trims
    if "sweep" in sections:
        guarded("sweep", lambda: sweep(cfg))
    if "theory" in sections:
        guarded("theory", lambda: theory(cfg))
    if "grid" in sections:
        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip() in ("exact", "sampled"))
        guarded("grid", lambda: grid(cfg, t_start + cfg["budget"], modes))

    pk = result.get("peak", {})
    ref = pk.get("float32_highest_gflops")
    print(table(result, ref))
    save()
    print(f"wrote {out_path} ({result['total_s']:.1f} s)")
    return 0


def table(result, ref):
    lines = []
    pk = result.get("peak", {})
    if "float32_default_gflops" in pk:
        lines.append(
            f"float32 matmul peak (n = {pk['n']}): {pk['float32_default_gflops']:.0f} GFLOP/s at default "
            f"precision, {pk['float32_highest_gflops']:.0f} GFLOP/s at precision=highest"
        )
    elif pk:
        lines.append(f"peak: {pk.get('status')}")
    g = result.get("grid")
    if isinstance(g, list):
        lines += [
            "",
            "| loss | N | M | net-steps/s | GFLOP/s (exact, counted) | % of f32 peak | first call (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in g:
            if r["status"] != "ok":
                lines.append(f"| {r['mode']} | {r['N']} | {r['M']} | {r['status']} | | | |")
                continue
            gf = r.get("achieved_gflops")
            pct = f"{100 * gf / ref:.1f}" if gf is not None and ref else ""
            lines.append(
                f"| {r['mode']} | {r['N']} | {r['M']} | {r['net_steps_per_s']:.1f} | "
                f"{'' if gf is None else f'{gf:.1f}'} | {pct} | {r['first_call_s']:.1f} |"
            )
    elif g is not None:
        lines.append(f"grid: {g.get('status')}")
    s = result.get("sweep")
    if s and s.get("status") == "ok":
        ex = f" (extrapolated from {s['steps_run']} steps)" if s.get("extrapolated") else ""
        lines += [
            "",
            f"sweep {s['M']} networks x N = {s['N']} x {s['steps']} exact steps{ex}: "
            f"{s['wall_excl_compile_s']:.1f} s excl. compile, {s['wall_incl_compile_s']:.1f} s incl. "
            f"({s['net_steps_per_s']:.0f} net-steps/s, {s['achieved_gflops']:.1f} GFLOP/s counted)",
        ]
    elif s:
        lines.append(f"sweep: {s.get('status')}")
    t = result.get("theory")
    if t and t.get("status") == "ok":
        lines += [
            f"theory sigma = 0 grid, {t['cells']} cells: {t['cells_per_s']:.0f} cells/s warm "
            f"(first call {t['first_call_s']:.1f} s, ok {t['ok_fraction']:.3f})"
        ]
    elif t:
        lines.append(f"theory: {t.get('status')}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
