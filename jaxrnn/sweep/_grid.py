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

from ._spec import AXES, SweepSpec

__all__ = ["Chunk", "Plan", "plan_sweep", "network_bytes", "network_flops_per_step", "explain_text"]


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
    params += {"adam": 2, "rmsprop": 1, "sgd_momentum": 1}.get(optimizer, 0)
    dev = (mats + params) * N * N * item
    if spec.train.loss == "sampled":
        dev += spec.train.batch * spec.train.sample_steps * N * item * 2
    host = spec.train.n_log * (12 * 8 + N * 16)
    return int(dev + host)


def network_flops_per_step(spec: SweepSpec, N: int, optimizer: str) -> float:
    """Rough flops of one network step (used only for `explain`'s time estimate)."""
    from ..lyapunov import doublings_for

    stages = 4 if optimizer == "flow" and spec.train.solver == "rk4" else 1
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


def plan_sweep(spec: SweepSpec, *, chunk_size: int | None = None, n_devices: int | None = None) -> Plan:
    """Group cells by (N, optimizer) and cut each group into chunks of whole cells."""
    g = spec.grid
    n_dev = n_devices if n_devices is not None else _local_device_count(spec)
    n_seeds = len(g.seed)
    shape = g.shape
    flat = np.arange(g.n_cells).reshape(shape)
    chunks, per_group = [], {}
    for iN, N in enumerate(g.N):
        for io, opt in enumerate(g.optimizer):
            cells = flat[iN, :, :, :, :, io].reshape(-1)
            cs = chunk_size if chunk_size is not None else spec.run.chunk_size
            if not cs:
                budget = spec.run.memory_gb * 2**30
                cs = max(1, int(budget // network_bytes(spec, N, opt)))
            cells_per_chunk = max(1, min(len(cells), cs // n_seeds))
            size = cells_per_chunk * n_seeds
            size = int(math.ceil(size / n_dev) * n_dev)  # the network axis is sharded over devices
            per_group[(N, opt)] = size
            for start in range(0, len(cells), cells_per_chunk):
                chunks.append(Chunk(len(chunks), (N, opt), cells[start : start + cells_per_chunk], size))
    return Plan(spec, tuple(chunks), per_group, n_dev)


def explain_text(spec: SweepSpec, plan: Plan) -> str:
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
        + f" steps={t.steps} (t_end={spec.t_end:g}) log points={len(spec.log_steps())} dtype={t.dtype}"
    )
    lines.append(f"theory overlay: {spec.theory.overlay}")
    lines.append(f"devices: {plan.n_devices} local; groups (one compile each): {len(plan.groups)}; chunks: {len(plan.chunks)}")
    total_flops = 0.0
    peak = 0
    for grp in plan.groups:
        N, o = grp
        n_chunks = sum(1 for c in plan.chunks if c.group == grp)
        size = plan.chunk_networks[grp]
        mem = size * network_bytes(spec, N, o)
        peak = max(peak, mem)
        fl = network_flops_per_step(spec, N, o) * t.steps * n_chunks * size
        total_flops += fl
        lines.append(f"  group N={N} optimizer={o}: {n_chunks} chunk(s) of {size} networks, ~{mem / 2**20:.1f} MiB per chunk")
    n_log = len(spec.log_steps())
    n_spec = len(spec.spectra_indices())
    store_bytes = g.n_networks * (n_log * 8 * 7 + 8 * 6 + n_spec * max(g.N) * 16)
    lines.append(f"estimated peak memory per chunk: {peak / 2**20:.1f} MiB (budget {spec.run.memory_gb:g} GiB)")
    lines.append(f"estimated store size: {store_bytes / 2**20:.1f} MiB (uncompressed)")
    secs = total_flops / spec.run.flops
    lines.append(
        f"estimated run time: {secs:.0f} s at {spec.run.flops:.2g} flop/s ({total_flops:.3g} flop) + ~{len(plan.groups) * 5} s compile"
    )
    return "\n".join(lines)
