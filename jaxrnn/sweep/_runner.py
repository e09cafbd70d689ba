"""Run a sweep: plan -> for each pending chunk: build the population, train it sharded over the local
devices, compute the theory beside it, write its cells, mark them done.

Multi-host design: every process computes the same deterministic plan and takes the chunks with
`chunk.index % process_count == process_index`; it shards each chunk over its own local devices
(one `Mesh` per host, no cross-host collectives) and writes its own cells. Process 0 creates the
store; the others wait for its `jaxrnn_ready` attribute. Because a cell is one zarr chunk, hosts never
write the same file. This needs a shared filesystem (or an object store) for the zarr path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..results import network_arrays
from ._grid import Chunk, Plan, check_budget, estimate, plan_sweep
from ._spec import AXES, ConfigError, SweepSpec
from ._store import (
    StoreError,
    array_names,
    check_store_path,
    done_mask,
    open_store,
    store_id,
    verify_cells,
    write_cells,
)

__all__ = ["RunSummary", "run_sweep", "make_method", "make_loss", "theory_infinite", "check_compute_dtype"]

log = logging.getLogger("jaxrnn.sweep")


@dataclasses.dataclass
class RunSummary:
    store: str
    chunks_total: int
    chunks_run: int
    chunks_skipped: int
    networks_run: int
    compile_s: float
    run_s: float
    wall_s: float
    diverged: int

    @property
    def nothing_to_do(self) -> bool:
        return self.chunks_run == 0


def make_method(spec: SweepSpec, optimizer: str):
    import optax

    from ..train import GradientDescent, GradientFlow, OptaxOptimizer, StiffFlow

    if optimizer == "flow" and spec.train.solver == "stiff":
        return StiffFlow(spec.train.dt, rtol=spec.train.rtol)
    if optimizer == "flow":
        return GradientFlow(spec.train.dt, spec.train.solver, checks=spec.train.curvature_checks)
    if optimizer == "gd":
        return GradientDescent()
    if optimizer == "adam":
        return OptaxOptimizer(optax.adam)
    if optimizer == "sgd_momentum":
        return OptaxOptimizer(optax.sgd, momentum=0.9)
    if optimizer == "rmsprop":
        return OptaxOptimizer(optax.rmsprop)
    raise ValueError(optimizer)


def make_loss(spec: SweepSpec):
    """The loss object; ExactLoss's doublings come from the whole grid's smallest c, never the chunk's."""
    from ..lyapunov import doublings_for
    from ..train import DiscreteLoss, ExactLoss, FiniteHorizonLoss, SampledLoss

    t = spec.train
    if t.loss == "exact":
        # slowest decay rate any network can reach: the learned outlier (c) or the bulk's edge, whose
        # finite-N radius is about sigma (1 + 2/sqrt(N)); a quarter of it, as the trainer's default does
        edge = min(1.0 - s * (1 + 2 / np.sqrt(n)) for s in spec.grid.sigma for n in spec.grid.N)
        kappa = max(min(min(spec.grid.c), edge) / 4, 1e-4)
        return ExactLoss(doublings=doublings_for(kappa), gramian=t.gramian)
    if t.loss == "finite_horizon":
        assert t.horizon is not None  # required by the spec with loss = "finite_horizon"
        return FiniteHorizonLoss(t.horizon)
    if t.loss == "discrete":
        return DiscreteLoss(t.loss_dt)
    return SampledLoss(t.loss_dt, t.batch, t.sample_steps, t.burn_in)


def _dtype(spec):
    import jax.numpy as jnp

    return jnp.float32 if spec.train.dtype == "float32" else jnp.float64


def _targets(spec, c, w):
    from ..targets import damped_oscillator, leaky_integrator

    dt = _dtype(spec)
    if spec.train.target == "oscillator":
        return damped_oscillator(np.asarray(c), np.asarray(w), dtype=dt)
    return leaky_integrator(np.asarray(c), dtype=dt)


def theory_supported(spec: SweepSpec) -> bool:
    return spec.has_theory


def _theory_module():
    from .. import theory

    return theory


def theory_infinite(spec: SweepSpec, quiet: bool = True) -> dict | None:
    """The N -> inf sigma = 0 theory on the (c, w, eta) grid, on the store's log times."""
    if not theory_supported(spec):
        return None
    th = _theory_module()
    if th is None:
        return None
    g = spec.grid
    C, Wf, E = np.meshgrid(np.asarray(g.c), np.asarray(g.w), np.asarray(g.eta), indexing="ij")
    shape = C.shape
    ts = spec.log_times()
    t0 = time.perf_counter()
    with _theory_status(quiet, f"N -> inf sigma = 0 curves at {C.size} (c, w, eta) points"):
        # the N -> inf start has |u0| = |v0|: the symmetric 5-ODE is exact there and ~4x cheaper to run than
        # the 8-ODE. But a small grid with sigma = 0 networks solves the 8-ODE from their own starts anyway:
        # there the 8-ODE's program serves both (one compile instead of two, ~1.6 s on one core)
        shared = 0.0 in np.asarray(g.sigma) and C.size <= th.MIN_GRID_CELLS
        res = th.solve(
            _targets(spec, C.ravel(), Wf.ravel()),
            th.Sigma0(symmetric=not shared),
            t1=float(ts[-1]),
            eta=E.ravel(),
            ts=ts,
            rtol=spec.theory.rtol,
            atol=spec.theory.atol,
        )
    ok = np.asarray(res.ok).reshape(-1)
    if not ok.all():
        # a failed solve is data (NaN, counted here), never a curve drawn as if right
        log.warning(
            "N -> inf theory: the solver failed at %d of %d (c, w, eta) points; they are stored as NaN",
            int((~ok).sum()),
            ok.size,
        )
    log.info("N -> inf theory on %d (c, w, eta) points in %.1f s", C.size, time.perf_counter() - t0)
    T = len(ts)
    bad = ~ok
    loss, outlier, t_learn = (
        np.array(np.asarray(x), dtype=np.result_type(np.asarray(x).dtype, np.float64))
        for x in (res.loss, res.outlier, res.t_learn)
    )
    loss[bad], outlier[bad], t_learn[bad] = np.nan, np.nan, np.nan
    return {
        "theory_inf_loss": loss.reshape(shape + (T,)),
        "theory_inf_outlier": outlier.reshape(shape + (T,)),
        "theory_inf_t_learn": t_learn.reshape(shape),
    }


def _networks(spec: SweepSpec, cells: np.ndarray):
    """Per-network parameters (cell-major, seed-minor) for the given flat cell indices."""
    g = spec.grid
    idx = np.unravel_index(cells, g.shape)
    vals = {a: np.asarray(g.axis(a))[idx[k]] for k, a in enumerate(AXES)}
    S = len(g.seed)
    net = {a: np.repeat(v, S) for a, v in vals.items()}
    net["seed"] = np.tile(np.asarray(g.seed, dtype=np.int64), len(cells))
    draw = np.zeros(len(cells), np.int64) if spec.train.common_init else cells.astype(np.int64)
    net["draw"] = np.repeat(draw, S)
    return net


def _pad(x, size):
    x = np.asarray(x)
    if len(x) >= size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def _mesh(n_devices):
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.local_devices()[:n_devices]), ("net",))


def _shard(tree, mesh):
    import equinox as eqx
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if mesh.size == 1:
        return tree
    sh = NamedSharding(mesh, PartitionSpec("net"))
    return jax.tree.map(lambda x: jax.device_put(x, sh) if eqx.is_array(x) else x, tree)


_NOISE_SALT = 0x5EED


def build_population(spec: SweepSpec, N: int, net: dict):
    """The initial population and its per-network noise keys: network (seed, draw) is drawn from
    network_key(seed, draw), its sampled-loss noise from fold_in(network_key(seed, draw), _NOISE_SALT)."""
    from ..model import init_population, network_keys

    model = init_population(
        N,
        net["sigma"],
        net["seed"],
        net["draw"],
        rescale_v=spec.train.rescale_v,
        scaling=spec.train.scaling,
        dtype=_dtype(spec),
    )
    return model, network_keys(net["seed"], net["draw"], salt=_NOISE_SALT)


def run_chunk(
    spec: SweepSpec, chunk: Chunk, cells: np.ndarray, mesh, *, loss_obj=None, callback=None, quiet=True
) -> dict:
    """Train the networks of `cells` (a subset of the chunk's cells) padded to `chunk.size`; returns
    store-layout arrays (n_cells, n_seeds, ...)."""

    from ..train import train

    N, opt = chunk.group
    S = len(spec.grid.seed)
    net = _networks(spec, cells)
    n_real = len(net["seed"])
    netp = {k: _pad(v, chunk.size) for k, v in net.items()}
    model, noise_keys = build_population(spec, N, netp)
    targets = _targets(spec, netp["c"], netp["w"])
    model, targets, noise_keys = _shard((model, targets, noise_keys), mesh)
    si = spec.spectra_indices()
    res = train(
        model,
        targets,
        eta=netp["eta"],
        method=make_method(spec, opt),
        loss=loss_obj if loss_obj is not None else make_loss(spec),
        steps=spec.train.steps,
        log_steps=spec.log_steps(),
        trainable=spec.train.trainable,
        keys=noise_keys,
        keep_spectra=bool(len(si)),
        callback=callback,
    )
    arrays = network_arrays(res, sigma=netp["sigma"], spectrum_index=si if len(si) else None)
    out = {k: v[:n_real].reshape((len(cells), S) + v.shape[1:]) for k, v in arrays.items()}
    if "spectrum" in out:  # NaN-padded to the largest N of the grid
        ev = out["spectrum"]
        pad = np.full(
            ev.shape[:-1] + (max(spec.grid.N),),
            np.nan + 1j * np.nan,
            dtype=np.result_type(ev.dtype, np.complex64),
        )
        pad[..., :N] = ev
        out["spectrum"] = pad
    if theory_supported(spec):
        out.update(_theory_own_ic(spec, chunk, model, targets, netp, n_real, len(cells), S, quiet))
    return out


def _theory_own_ic(spec, chunk, model, targets, netp, n_real, n_cells, S, quiet=True):
    """sigma = 0 networks: the exact 8-ODE from each network's own (u0, v0); NaN elsewhere."""
    import jax

    T = len(spec.log_times())
    out = {
        "theory_loss": np.full((n_real, T), np.nan),
        "theory_outlier": np.full((n_real, T), np.nan + 1j * np.nan),
        "theory_t_learn": np.full((n_real,), np.nan),
        "theory_ok": np.full((n_real,), -1, np.int8),
    }
    zero = np.flatnonzero(netp["sigma"][:n_real] == 0)
    th = _theory_module() if len(zero) else None
    if th is not None:
        # pad to the chunk size so every chunk reuses one compiled theory program
        sel = _pad(zero, chunk.size)
        sub = jax.tree.map(lambda x: np.asarray(x)[sel], (model, targets))
        ts = spec.log_times()
        with _theory_status(
            quiet, f"sigma = 0 8-ODE from {len(zero)} networks' own initial conditions (chunk {chunk.index})"
        ):
            res = th.solve(
                sub[1],
                th.Sigma0(),
                t1=float(ts[-1]),
                eta=netp["eta"][sel],
                ts=ts,
                network=sub[0],
                rtol=spec.theory.rtol,
                atol=spec.theory.atol,
            )
        k = len(zero)
        ok = np.asarray(res.ok).reshape(-1)[:k]
        good = zero[ok]
        out["theory_loss"][good] = np.asarray(res.loss)[:k][ok]
        out["theory_outlier"][good] = np.asarray(res.outlier)[:k][ok]
        out["theory_t_learn"][good] = np.asarray(res.t_learn)[:k][ok]
        out["theory_ok"][zero] = ok.astype(np.int8)
        if not ok.all():
            log.warning(
                "sigma = 0 theory: the solver failed for %d network(s) of chunk %d; stored as NaN (theory_ok = 0)",
                int((~ok).sum()),
                chunk.index,
            )
    return {k: v.reshape((n_cells, S) + v.shape[1:]) for k, v in out.items()}


class Progress:
    """Live progress of a sweep (tqdm, on stderr): network-steps done inside chunks, compile time shown
    apart, and an ETA from the steady rate only (the first interval of each compiled program, which
    holds its compile, is left out of the rate). `quiet` silences it."""

    def __init__(self, total_networks: int, steps: int, quiet: bool):
        from tqdm.auto import tqdm

        self.total = total_networks * steps
        self.steps = steps
        self.networks = 0
        self.compile_s = 0.0
        self.steady_work = 0  # network-steps done outside compile intervals
        self.steady_s = 0.0
        self._compile_work = 0
        self.t0 = time.perf_counter()
        self.quiet = quiet
        self.bar = tqdm(
            total=self.total,
            unit=" net-steps",
            unit_scale=True,
            disable=quiet or not _live(),
            leave=True,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            desc="training",
        )

    def chunk_callback(self, n_networks: int, first_of_group: bool):
        """The `train` callback for one chunk: called with (steps done, steps) between log points."""
        state = {"last_step": 0, "last_t": time.perf_counter(), "first": first_of_group}

        def cb(done_steps: int, total_steps: int):
            now = time.perf_counter()
            work = (done_steps - state["last_step"]) * n_networks
            dt = now - state["last_t"]
            if state["first"]:  # this interval compiled the group's program: time it as compile
                self.compile_s += dt
                self._compile_work += work
                state["first"] = False
            else:
                self.steady_work += work
                self.steady_s += dt
            state["last_step"], state["last_t"] = done_steps, now
            self.bar.update(work)
            self._postfix()

        return cb

    def _postfix(self):
        left = self.total - self.bar.n
        eta = left * self.steady_s / self.steady_work if self.steady_work else float("nan")
        eta_txt = "?" if eta != eta else f"{eta:.0f} s"
        self.bar.set_postfix_str(f"compile {self.compile_s:.1f} s, ETA {eta_txt}", refresh=True)

    def chunk_done(self, n_networks: int):
        self.networks += n_networks
        if self.bar.disable and not self.quiet:  # not a terminal: one log line per chunk
            left = self.total - self.steady_work - self._compile_work
            eta = left * self.steady_s / self.steady_work if self.steady_work else float("nan")
            log.info(
                "%d networks done, elapsed %.1f s (compile %.1f s), ETA %.0f s",
                self.networks,
                time.perf_counter() - self.t0,
                self.compile_s,
                eta,
            )

    @property
    def run_s(self) -> float:
        return time.perf_counter() - self.t0 - self.compile_s

    def close(self):
        self.bar.close()


def _live() -> bool:
    """Live bars only on a terminal; in a log file (CI, nohup) they would be a flood of carriage returns."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def _theory_status(quiet: bool, what: str):
    """A live one-line status for a theory solve: one compiled call has no inner progress to report, so
    the line shows what is being solved and the elapsed time, refreshed from a helper thread (on a
    terminal; elsewhere one log line when it starts and one when it ends)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if quiet or not _live():
        if not quiet:
            log.info("theory: %s ...", what)
        yield
        if not quiet:
            log.info("theory: %s done in %.1f s", what, time.perf_counter() - t0)
        return
    bar = tqdm(total=1, desc=f"theory: {what}", bar_format="{desc} [{elapsed}]", leave=True)
    stop = threading.Event()

    def refresh():
        while not stop.wait(0.5):
            bar.refresh()

    th = threading.Thread(target=refresh, daemon=True)
    th.start()
    try:
        yield
        bar.update(1)
    finally:
        stop.set()
        th.join()
        bar.close()


def run_sweep(
    spec: SweepSpec,
    store_path,
    *,
    fresh: bool = False,
    chunk_size: int | None = None,
    quiet: bool = False,
    process_index: int = 0,
    process_count: int = 1,
    n_devices: int | None = None,
) -> RunSummary:
    """Run (or resume) the sweep into `store_path`. See the module docstring for the multi-host design."""
    import jax

    t_wall = time.perf_counter()
    check_compute_dtype(spec)
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, process_count), got {process_index} of {process_count}"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
    over = check_budget(spec, estimate(spec, chunk_size=chunk_size, n_devices=n_devices))
    if over:  # before anything is planned, compiled or written
        raise ConfigError(over)
    plan: Plan = plan_sweep(spec, chunk_size=chunk_size, n_devices=n_devices)
    if process_index == 0:
        check_store_path(store_path)  # before the theory runs: a bad path costs nothing
    g = _open_shared_store(spec, store_path, fresh, process_index, process_count, quiet)
    done = done_mask(g).reshape(-1)
    mine = [c for c in plan.chunks if c.index % process_count == process_index]
    if done.any():
        mine_cells = np.concatenate([c.cells for c in mine]) if mine else np.zeros(0, np.int64)
        bad = verify_cells(g, spec, mine_cells)
        if len(bad):
            log.warning(
                "%d cell(s) marked done in %s fail their checksum (missing or corrupt data); recomputing them",
                len(bad),
                store_path,
            )
            done[bad] = False
    todo = [(c, c.cells[~done[c.cells]]) for c in mine]
    todo = [(c, cells) for c, cells in todo if len(cells)]
    skipped = len(mine) - len(todo)
    S = len(spec.grid.seed)
    if not todo:
        log.info("nothing to do: all %d chunks of %s are done", len(mine), store_path)
        return RunSummary(
            str(store_path), len(plan.chunks), 0, skipped, 0, 0.0, 0.0, time.perf_counter() - t_wall, 0
        )
    if skipped:
        log.info("resuming: %d of %d chunks already done", skipped, len(mine))
    n_dev = plan.n_devices
    mesh = _mesh(n_dev)
    log.info(
        "running %d chunks (%d networks) on %d %s device(s), process %d/%d",
        len(todo),
        sum(len(c) for _, c in todo) * S,
        n_dev,
        jax.default_backend(),
        process_index,
        process_count,
    )
    loss_obj = make_loss(spec)
    prog = Progress(sum(len(c) for _, c in todo) * S, spec.train.steps, quiet)
    diverged = 0
    compiled = set()
    try:
        for chunk, cells in todo:
            cb = prog.chunk_callback(len(cells) * S, first_of_group=chunk.group not in compiled)
            data = run_chunk(spec, chunk, cells, mesh, loss_obj=loss_obj, callback=cb, quiet=quiet)
            compiled.add(chunk.group)
            present = array_names(g)
            write_cells(g, spec, cells, {k: v for k, v in data.items() if k in present})
            diverged += int(np.sum(data["status"] == 1))
            prog.chunk_done(len(cells) * S)
    finally:
        prog.close()
    if diverged:
        log.warning("%d networks diverged (status = diverged in the store)", diverged)
    return RunSummary(
        str(store_path),
        len(plan.chunks),
        len(todo),
        skipped,
        prog.networks,
        prog.compile_s,
        prog.run_s,
        time.perf_counter() - t_wall,
        diverged,
    )


def check_compute_dtype(spec: SweepSpec) -> None:
    """A float64 sweep needs jax's x64 mode; without it jax would compute in float32 while the store
    says float64."""
    import jax

    if spec.train.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            'train.dtype = "float64" needs jax\'s 64-bit mode: call jax.config.update("jax_enable_x64", True) '
            'before run_sweep (the CLI does), or set train.dtype = "float32"'
        )


def _open_shared_store(spec, store_path, fresh, process_index, process_count, quiet=True):
    """Process 0 creates (or reopens) the store; the others wait for that very store (its id is passed
    through jax.distributed's key-value service, so `fresh` never lets them open the old one)."""
    key = f"jaxrnn/store/{spec.config_hash}/{Path(store_path).resolve()}"
    client = _distributed_client() if process_count > 1 else None
    if process_index == 0:
        g = open_store(
            store_path, spec, fresh=fresh, create=True, theory_inf=lambda: theory_infinite(spec, quiet)
        )
        if client is not None:
            client.key_value_set(key, store_id(g))
        return g
    sid = client.blocking_key_value_get(key, 3_600_000) if client is not None else None
    if client is None and fresh:
        raise StoreError("--fresh with several processes needs jax.distributed (pass --coordinator)")
    return open_store(store_path, spec, create=False, store_id=sid)


def _distributed_client():
    try:
        from jax._src.distributed import global_state
    except ImportError:  # pragma: no cover - jax moved it
        return None
    return global_state.client


def store_progress(store_path) -> tuple[int, int]:
    """(cells done, cells in the grid) of a store."""
    from ._store import _open_group

    done = done_mask(_open_group(store_path, "r"))
    return int(done.sum()), int(done.size)


def pending_cells(store_path) -> int:
    """Number of cells not yet done in a store."""
    from ._store import _open_group

    return int((~done_mask(_open_group(store_path, "r"))).sum())
