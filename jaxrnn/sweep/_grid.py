"""Grid expansion, grouping by static shape, chunking to a memory budget, and the `explain` summary.

A *cell* is one point of the grid axes (N, sigma, c, w, eta, optimizer); a *network* is a cell and a
seed. Cells with equal (N, optimizer) share one compiled program (a *group*). A group is cut into
*chunks* of whole cells (all seeds of a cell in one chunk, so a cell is one zarr chunk of the store
and two hosts never write the same file). Every chunk of a group is padded to the same number of
networks (a multiple of the device count), so a group compiles once.

Network identity: network (cell, seed) is drawn with `jaxrnn.model.network_key(seed, draw_index)`
where draw_index is the cell's flat index in the full grid (or 0 with `train.common_init`, which
gives every cell of a seed the same Z, u0, v0: common random numbers across the grid). Nothing
depends on chunking, device count or order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._spec import AXES, ConfigIssue, SweepSpec

__all__ = [
    "Chunk",
    "Plan",
    "plan_sweep",
    "network_bytes",
    "network_flops_per_step",
    "Estimate",
    "estimate",
    "check_budget",
    "explain_text",
]


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int  # global chunk id (deterministic, the same on every host)
    group: tuple  # (N, optimizer)
    cells: np.ndarray  # flat cell indices (C order over AXES)
    size: int  # padded number of networks this chunk's program runs


@dataclasses.dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    chunks: tuple[Chunk, ...]
    chunk_networks: dict  # group -> padded networks per chunk
    n_devices: int

    @property
    def groups(self):
        return sorted({c.group for c in self.chunks}, key=lambda g: (g[0], str(g[1])))

    def cell_index(self, flat):
        return np.unravel_index(np.asarray(flat), self.spec.grid.shape)


def network_bytes(spec: SweepSpec, N: int, optimizer: str) -> int:
    """Working memory of one network in one step, in bytes (a deliberate overestimate).

    The exact loss keeps about 12 N x N matrices alive (Cayley factors, two Gramians, their doubling
    iterates, gradient); RK4 keeps 4 stage velocities and the state (params, last good, W0) = 7 more
    parameter sets; adam/rmsprop/momentum add 1-2 sets. The host keeps the log (n_log x ~10 values)
    and, for spectra, n_log x N complex eigenvalues.
    """
    item = 8 if spec.train.dtype == "float64" else 4
    mats = 12 if spec.train.loss in ("exact", "discrete") else 6
    if spec.train.loss == "finite_horizon":
        mats = 24  # Van Loan block exponentials (2N x 2N)
    params = 7 if optimizer == "flow" and spec.train.solver == "rk4" else 3
    if optimizer == "flow" and spec.train.solver == "stiff":
        # 4 stages, y, last good, 2 Lanczos directions (+ 8 during a refresh) and the snapshots of a block of
        # up to 32 log points (train._SNAPSHOT_BLOCK)
        params = 16 + min(32, spec.train.n_log)
    params += {"adam": 2, "rmsprop": 1, "sgd_momentum": 1}.get(optimizer, 0)
    dev = (mats + params) * N * N * item
    if spec.train.loss == "sampled":
        dev += spec.train.batch * spec.train.sample_steps * N * item * 2
    host = spec.train.n_log * (12 * 8 + N * 16)
    return int(dev + host)


STIFF_ATTEMPTS = 240  # StiffFlow step attempts per network at rtol = 1e-6 (c = 0.03, t = 0 -> 1.2; measured)


def network_flops_per_step(spec: SweepSpec, N: int, optimizer: str) -> float:
    """Rough flops of one network step (used only for `explain`'s time estimate)."""
    from ..lyapunov import doublings_for

    stages = 4 if optimizer == "flow" and spec.train.solver == "rk4" else 1
    if optimizer == "flow" and spec.train.solver == "stiff":
        # StiffFlow's cost is not per step: a rough model from benchmarks/bench_stiff.py (c = 0.03, flow time
        # 1.2: ~240 attempts per network at rtol 1e-6, 5 gradients each with the Jacobian refreshes), the
        # attempts scaling like rtol^(-1/3) (order 3); spread over the steps
        stages = 5 * STIFF_ATTEMPTS * (1e-6 / spec.train.rtol) ** (1 / 3) / spec.train.steps
    if spec.train.loss == "exact" and spec.train.gramian == "low_rank":
        # two shifted inverses (~8/3 N^3 each), O P = Z_O (Z_O^T Z_P) Z_P^T of rank <= 128, ADI mat-vecs
        per = 2 * (8 / 3) * N**3 + 2 * 128 * N**2 * 2 + 2 * 64 * 2 * N**2
    elif spec.train.loss == "exact":
        K = doublings_for(max(min(spec.grid.c), 1e-6) / 4)
        per = (2 * K * 3 + 12) * 2 * N**3  # doubling squares + updates, solves and products
    elif spec.train.loss == "discrete":
        per = 40 * 2 * N**3
    elif spec.train.loss == "finite_horizon":
        per = 60 * 2 * (2 * N) ** 3
    else:
        per = 4 * spec.train.sample_steps * spec.train.batch * N * N
    return float(stages * per)


def _local_device_count(spec: SweepSpec) -> int:
    import jax

    n = len(jax.local_devices())
    return min(n, spec.run.devices) if spec.run.devices else n


def _group_layout(
    spec: SweepSpec, N: int, opt: str, n_cells: int, chunk_size, n_dev: int
) -> tuple[int, int, int]:
    """(cells per chunk, padded networks per chunk, chunks) of one group; arithmetic only, so that a
    huge grid is sized (and refused) without enumerating its chunks."""
    n_seeds = len(spec.grid.seed)
    cs = chunk_size if chunk_size is not None else spec.run.chunk_size
    if not cs:
        cs = max(1, int(spec.run.memory_gb * 2**30 // network_bytes(spec, N, opt)))
    cells_per_chunk = max(1, min(n_cells, cs // n_seeds))
    size = int(
        math.ceil(cells_per_chunk * n_seeds / n_dev) * n_dev
    )  # the network axis is sharded over devices
    return cells_per_chunk, size, math.ceil(n_cells / cells_per_chunk)


def plan_sweep(spec: SweepSpec, *, chunk_size: int | None = None, n_devices: int | None = None) -> Plan:
    """Group cells by (N, optimizer) and cut each group into chunks of whole cells."""
    g = spec.grid
    n_dev = n_devices if n_devices is not None else _local_device_count(spec)
    flat = np.arange(g.n_cells).reshape(g.shape)
    chunks, per_group = [], {}
    for iN, N in enumerate(g.N):
        for io, opt in enumerate(g.optimizer):
            cells = flat[iN, :, :, :, :, io].reshape(-1)
            cells_per_chunk, size, _ = _group_layout(spec, N, opt, len(cells), chunk_size, n_dev)
            per_group[(N, opt)] = size
            for start in range(0, len(cells), cells_per_chunk):
                chunks.append(Chunk(len(chunks), (N, opt), cells[start : start + cells_per_chunk], size))
    return Plan(spec, tuple(chunks), per_group, n_dev)


# ----------------------------------------------------------------------------- cost model and budget

# Calibrated on a 2-core x86-64 CPU (docs/sweep.md, "Estimates"); `run.flops` overrides the measured rate.
COMPILE_S = {
    "exact": 8.0,
    "discrete": 6.0,
    "finite_horizon": 10.0,
    "sampled": 6.0,
}  # per (N, optimizer) group
STEP_OVERHEAD_S = 2e-4  # per step of one chunk: loop and kernel launches, independent of its size
THEORY_COMPILE_S = 6.0  # the sigma = 0 reduced ODEs, per distinct program
THEORY_CELL_S = 0.05  # per (c, w, eta) point or sigma = 0 network


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a sweep will cost: memory per chunk, store size, and time split by where it goes (s)."""

    groups: dict  # (N, optimizer) -> (chunks, networks per chunk, bytes per chunk)
    store_bytes: int
    rate: float  # flop/s used for the steps
    compile_s: float
    train_s: float
    log_s: float
    theory_s: float

    @property
    def peak_chunk_bytes(self) -> int:
        return max(b for _, _, b in self.groups.values())

    @property
    def total_s(self) -> float:
        return self.compile_s + self.train_s + self.log_s + self.theory_s


_RATE_CACHE: dict = {}


def measured_rate(N: int, batch: int, dtype: str) -> float:
    """Sustained flop/s of a batched N x N matmul on the default device (a ~0.1 s measurement, cached)."""
    import time

    import jax
    import jax.numpy as jnp

    from .._compile import jit

    key = (N, batch, dtype, jax.default_backend())
    if key not in _RATE_CACHE:
        dt = jnp.float32 if dtype == "float32" or not jax.config.read("jax_enable_x64") else jnp.float64
        a = jnp.asarray(np.full((batch, N, N), 1.0 / N, dt))
        f = jit(lambda x, a: jax.lax.fori_loop(0, 8, lambda i, y: y @ a, x))  # jaxrnn's compile options
        f(a, a).block_until_ready()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            f(a, a).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        _RATE_CACHE[key] = 8 * 2 * batch * N**3 / best
    return _RATE_CACHE[key]


def _store_bytes(spec: SweepSpec) -> int:
    g = spec.grid
    item = 8 if spec.train.dtype == "float64" else 4
    n_log, n_spec = len(spec.log_steps()), len(spec.spectra_indices())
    per_net = n_log * item * (4 + 2 * 1) + 8 * 6 + n_spec * max(g.N) * 2 * item
    if spec.has_theory:
        per_net += n_log * item * 3 + item
    return int(g.n_networks * per_net)


def estimate(spec: SweepSpec, *, chunk_size: int | None = None, n_devices: int | None = None) -> Estimate:
    """The cost model behind `explain` and the budget checks (no chunk is enumerated)."""
    g, t = spec.grid, spec.train
    n_dev = n_devices if n_devices is not None else _local_device_count(spec)
    cells_per_group = g.n_cells // (len(g.N) * len(g.optimizer))
    groups, train_s, log_s, rates = {}, 0.0, 0.0, []
    n_log = len(spec.log_steps())
    for N in g.N:
        for opt in g.optimizer:
            _, size, n_chunks = _group_layout(spec, N, opt, cells_per_group, chunk_size, n_dev)
            groups[(N, opt)] = (n_chunks, size, size * network_bytes(spec, N, opt))
            r = spec.run.flops or measured_rate(N, min(size, 256), t.dtype) * n_dev
            rates.append(r)
            per_step = network_flops_per_step(spec, N, opt) * size / r + STEP_OVERHEAD_S
            train_s += n_chunks * t.steps * per_step
            # each log point: one monitor (~1/4 of an RK4 step's flops) and a host eig (~25 N^3 flops at ~1 Gflop/s)
            monitor = network_flops_per_step(spec, N, opt) / 4 * size / r
            log_s += n_chunks * n_log * (monitor + size * 25 * N**3 / 1e9)
    theory_s = 0.0
    if spec.has_theory:
        n_inf = len(g.c) * len(g.w) * len(g.eta)
        n_zero = g.n_networks // len(g.sigma) if 0.0 in g.sigma else 0
        theory_s = THEORY_COMPILE_S * (1 + bool(n_zero)) + THEORY_CELL_S * (n_inf + n_zero)
    compile_s = COMPILE_S[t.loss] * len(groups)
    return Estimate(groups, _store_bytes(spec), float(np.median(rates)), compile_s, train_s, log_s, theory_s)


def check_budget(spec: SweepSpec, est: Estimate) -> list[ConfigIssue]:
    """One issue per budget the sweep exceeds, each naming the knob that allows it."""
    r, out = spec.run, []
    gib = 2**30
    for (N, _opt), (_, size, b) in est.groups.items():
        if b > r.memory_gb * gib:
            out.append(
                ConfigIssue(
                    "run.memory_gb",
                    r.memory_gb,
                    f"one chunk of N = {N} ({size} networks: the {len(spec.grid.seed)} seeds of a "
                    f"cell stay together) needs ~{b / gib:.3g} GiB; raise run.memory_gb or use fewer seeds",
                )
            )
            break
    if est.total_s > r.max_hours * 3600:
        out.append(
            ConfigIssue(
                "run.max_hours",
                r.max_hours,
                f"the estimated run time is {_duration(est.total_s)}; raise run.max_hours "
                "to run it anyway, or shrink the grid",
            )
        )
    if est.store_bytes > r.max_store_gb * 1e9:
        out.append(
            ConfigIssue(
                "run.max_store_gb",
                r.max_store_gb,
                f"the store would hold ~{est.store_bytes / 1e9:.3g} GB; raise "
                "run.max_store_gb to write it anyway, or log fewer points (train.n_log)",
            )
        )
    return out


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 3 * 3600:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.3g} days"


def explain_text(spec: SweepSpec, est: Estimate) -> str:
    g, t = spec.grid, spec.train
    lines = [f"sweep {spec.name!r} ({spec.source or 'no file'}), config hash {spec.config_hash}"]
    if spec.description:
        lines.append(f"  {spec.description}")
    axes = "  ".join(f"{a}[{len(g.axis(a))}]" for a in AXES + ("seed",))
    lines.append(f"grid: {axes}")
    lines.append(f"  {g.n_cells} cells x {len(g.seed)} seeds = {g.n_networks} networks")
    opt = ", ".join(g.optimizer)
    lines.append(
        f"training: target={t.target} loss={t.loss} optimizer={opt}"
        + (f" solver={t.solver} dt={t.dt:g}" if spec.is_flow else "")
        + (f" rtol={t.rtol:g} (time estimate: a rough model)" if spec.is_flow and t.solver == "stiff" else "")
        + f" steps={t.steps} (t_end={spec.t_end:g}) log points={len(spec.log_steps())} dtype={t.dtype}"
    )
    lines.append(
        f"theory overlay: {spec.theory.overlay}"
        + ("" if spec.has_theory or spec.theory.overlay == "none" else " (does not apply here)")
    )
    n_chunks = sum(c for c, _, _ in est.groups.values())
    lines.append(f"groups (one compile each): {len(est.groups)}; chunks: {n_chunks}")
    for (N, o), (c, size, b) in est.groups.items():
        lines.append(
            f"  group N={N} optimizer={o}: {c} chunk(s) of {size} networks, ~{b / 2**20:.1f} MiB per chunk"
        )
    lines.append(
        f"estimated peak memory per chunk: {est.peak_chunk_bytes / 2**20:.1f} MiB (budget run.memory_gb = {spec.run.memory_gb:g} GiB)"
    )
    lines.append(
        f"estimated store size: {est.store_bytes / 2**20:.1f} MiB (budget run.max_store_gb = {spec.run.max_store_gb:g} GB)"
    )
    lines.append(
        f"estimated run time: {_duration(est.total_s)} (budget run.max_hours = {spec.run.max_hours:g}): compile "
        f"{est.compile_s:.0f} s, steps {_duration(est.train_s)} at {est.rate:.3g} flop/s, log points {_duration(est.log_s)}, "
        f"theory {_duration(est.theory_s)}"
    )
    for issue in check_budget(spec, est):
        lines.append(f"OVER BUDGET ({issue.field} = {issue.value:g}): {issue.allowed}")
    return "\n".join(lines)
