"""`jaxrnn theory`: the N -> inf theory over a config's grid, written as a store with the simulation's
layout and variable names, so that a learning-time map can be drawn from theory alone or subtracted
from a simulation.

The theory store of a spec is the spec with `N = (inf,)` (the N -> inf limit), one seed (the theory is
deterministic), no spectra and no overlay; its config hash therefore differs from the simulation's, and
it resumes sigma by sigma exactly as a simulation store resumes cell by cell. Per sigma value, one
`jaxrnn.theory.solve` call covers every (c, w, eta): sigma = 0 is the exact two-dimensional reduction
(docs/concepts.md §5); sigma > 0 is the Fock-space limit at `theory.depth` (§6). Cells whose solve did
not converge are stored with status `diverged` and NaN values, never as a curve drawn as if right.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from ..status import STATUS_DIVERGED, STATUS_OK
from ._spec import ConfigError, ConfigIssue, SweepSpec
from ._store import check_store_path, done_mask, open_store, write_cells

__all__ = ["THEORY_VARIABLES", "theory_spec", "theory_store_path", "run_theory_sweep"]

log = logging.getLogger("jaxrnn.sweep")

THEORY_VARIABLES = ("loss", "outlier", "t_learn", "status")


def theory_spec(spec: SweepSpec) -> SweepSpec:
    """The spec of `spec`'s theory store (N -> inf, one seed, no spectra, no overlay). Refuses, with one
    line per reason, a config the reduced theories do not describe."""
    t, issues = spec.train, []
    if t.loss != "exact":
        issues.append(ConfigIssue("train.loss", t.loss, 'the theory describes the exact loss: use "exact"'))
    if not spec.is_flow:
        issues.append(
            ConfigIssue(
                "grid.optimizer",
                list(spec.grid.optimizer),
                'the theory describes gradient flow: use ["flow"]',
            )
        )
    if t.scaling != "mean_field":
        issues.append(
            ConfigIssue("train.scaling", t.scaling, 'the theory describes mean-field rates: use "mean_field"')
        )
    if t.trainable != ("W", "u", "v"):
        issues.append(
            ConfigIssue(
                "train.trainable", list(t.trainable), 'the theory trains W, u and v: use ["W", "u", "v"]'
            )
        )
    if issues:
        raise ConfigError(issues)
    grid = dataclasses.replace(spec.grid, N=(float("inf"),), seed=(0,))
    return dataclasses.replace(
        spec,
        name=f"{spec.name}-theory",
        grid=grid,
        train=dataclasses.replace(t, spectra_at=()),
        theory=dataclasses.replace(spec.theory, overlay="none"),
    )


def theory_store_path(spec: SweepSpec, out: str | None = None):
    store, figs = theory_spec(spec).paths(out)
    return store, figs


def run_theory_sweep(spec: SweepSpec, store_path, *, fresh: bool = False, quiet: bool = False) -> dict:
    """Solve the theory on every (sigma, c, w, eta) cell of `spec` into `store_path`; returns a summary."""
    from .. import theory
    from ._runner import _targets, _theory_status, check_compute_dtype

    check_compute_dtype(spec)
    tspec = theory_spec(spec)
    check_store_path(store_path)
    g = open_store(store_path, tspec, fresh=fresh, variables=THEORY_VARIABLES)
    done = done_mask(g).reshape(-1)
    grid = tspec.grid
    shape = grid.shape  # (1, sigma, c, w, eta, optimizer)
    ts = tspec.log_times()
    C, Wf, E = np.meshgrid(np.asarray(grid.c), np.asarray(grid.w), np.asarray(grid.eta), indexing="ij")
    flat = np.arange(grid.n_cells).reshape(shape)
    t0, solved, failed = time.perf_counter(), 0, 0
    for i, sigma in enumerate(grid.sigma):
        cells = flat[0, i].reshape(-1)  # (c, w, eta, optimizer) in C order; one optimizer ("flow")
        if done[cells].all():
            continue
        # one vmapped call per sigma row: every (c, w, eta) at once (sigma = 0: the exact reduction; sigma > 0:
        # the Fock-space theory); a resume loses at most the row in progress
        depth = 0 if sigma == 0 else spec.theory.depth
        what = (
            f"sigma = {sigma:g}: exact reduction at {C.size} (c, w, eta) points"
            if sigma == 0
            else f"sigma = {sigma:g}: Fock depth {depth} at {C.size} (c, w, eta) points"
        )
        targets = _targets(tspec, C.ravel(), Wf.ravel())
        with _theory_status(quiet, what):
            choice = theory.Sigma0(symmetric=True) if sigma == 0 else theory.Fock(depth)
            res = theory.solve(
                targets,
                choice,
                t1=float(ts[-1]),
                eta=E.ravel(),
                ts=ts,
                sigma=float(sigma),
                rtol=spec.theory.rtol,
                atol=spec.theory.atol,
            )
        n = C.size
        ok = np.asarray(res.ok).reshape(n)
        loss = np.where(ok[:, None], np.asarray(res.loss).reshape(n, -1), np.nan)
        outlier = np.where(ok[:, None], np.asarray(res.outlier).reshape(n, -1), np.nan)
        t_learn = np.where(ok, np.asarray(res.t_learn).reshape(n), np.nan)
        status = np.where(ok, STATUS_OK, STATUS_DIVERGED).astype(np.int8)
        data = {
            "loss": loss[:, None, :],  # (cells, seed = 1, t)
            "outlier": outlier[:, None, :],
            "t_learn": t_learn[:, None],
            "status": status[:, None],
        }
        write_cells(g, tspec, cells, data)
        solved += int(ok.sum())
        failed += int((~ok).sum())
    if failed:
        log.warning(
            "theory: the solver failed at %d cell(s); they are stored as NaN with status diverged", failed
        )
    return dict(
        store=str(store_path),
        cells=grid.n_cells,
        solved=solved,
        failed=failed,
        wall_s=time.perf_counter() - t0,
    )
