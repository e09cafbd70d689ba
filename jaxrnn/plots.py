"""Figures from a sweep store: phase diagrams, learning-time curves, outlier trajectories, spectra.

Every figure draws the theory over the simulation when the store has it (`theory_*` variables):
the N -> inf sigma = 0 theory (`theory_inf_*`, a function of c, w, eta) and the sigma = 0 theory from
each network's own initial condition (`theory_*`). Axes not shown in a figure are fixed at their first
value (stated in the title); seeds are averaged (nanmean) with their spread shown where it fits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["plot_store", "phase_diagram", "learning_time_curves", "outlier_trajectories", "spectra", "loss_curves", "compare_table"]

log = logging.getLogger(__name__)
GRID = ("N", "sigma", "c", "w", "eta", "optimizer")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _fix_others(da, keep):
    """Select index 0 of every grid axis not in `keep`; returns (array, description of the fixed values)."""
    fixed = {}
    for a in GRID:
        if a in da.dims and a not in keep:
            if da.sizes[a] > 1:
                fixed[a] = da[a].values[0]
            da = da.isel({a: 0})
    desc = ", ".join(f"{k}={v:g}" if not isinstance(v, str) else f"{k}={v}" for k, v in fixed.items())
    return da, desc


def partial_note(ds) -> str | None:
    """"partial: k of n cells" for a store whose run has not finished, else None."""
    done = ds["done"].values
    return None if done.all() else f"partial store: {int(done.sum())} of {done.size} cells done"


def _save(fig, out, stem, formats, ds=None):
    note = partial_note(ds) if ds is not None else None
    if note:  # a figure of an unfinished sweep says so on its face
        fig.text(0.5, 0.995, note.upper(), ha="center", va="top", color="#b2182b", fontsize=11, weight="bold")
    files = []
    for fmt in formats:
        p = Path(out) / f"{stem}.{fmt}"
        fig.savefig(p, dpi=120, bbox_inches="tight")
        files.append(p)
    _plt().close(fig)
    return files


def _varying(ds):
    return [a for a in GRID[:5] if ds.sizes[a] > 1]


def phase_diagram(ds, x, y, out, formats=("png",)):
    """Heatmaps over (x, y): seed-mean t_learn (with the theory's prediction drawn over it) and
    |dW|_op / sigma at the end (rich >~ 1, lazy << 1)."""
    plt = _plt()
    tl, desc = _fix_others(ds["t_learn"], (x, y))
    tl = tl.mean("seed", skipna=True).transpose(y, x).values
    lazy, _ = _fix_others(ds["dW_op_over_sigma"], (x, y))
    lazy = lazy.mean("seed", skipna=True).transpose(y, x).values
    xs, ys = ds[x].values, ds[y].values
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, val, title, cmap in ((axes[0], tl, "t_learn (simulation, seed mean)", "viridis"), (axes[1], lazy, "|dW|_op / sigma at t_end", "magma")):
        im = ax.imshow(val, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(xs)), [f"{v:.3g}" for v in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [f"{v:.3g}" for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title, fontsize=10)
    if "theory_inf_t_learn" in ds:
        th = ds["theory_inf_t_learn"]
        for a in ("c", "w", "eta"):
            th = th if a in (x, y) else th.isel({a: 0})
        th = th.broadcast_like(ds["t_learn"].isel({a: 0 for a in GRID if a not in (x, y)}).isel(seed=0)).transpose(y, x).values
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = tl / th
        if np.isfinite(ratio).sum() >= 4 and min(ratio.shape) > 1:
            cs = axes[0].contour(ratio, levels=[0.9, 1.1], colors=["w", "w"], linestyles=["--", "-"])
            axes[0].clabel(cs, fmt={0.9: "sim/th=0.9", 1.1: "sim/th=1.1"}, fontsize=7)
        for j in range(th.shape[0]):
            for i in range(th.shape[1]):
                if x == "sigma" and xs[i] != 0 or y == "sigma" and ys[j] != 0:
                    continue
                axes[0].text(i, j, f"th {th[j, i]:.3g}\nsim {tl[j, i]:.3g}", ha="center", va="center", fontsize=6, color="w")
    fig.suptitle(f"phase diagram {y} x {x}" + (f" ({desc})" if desc else "") + "; theory: N->inf, sigma=0", fontsize=10)
    return _save(fig, out, f"phase_{y}_{x}", formats, ds)


def learning_time_curves(ds, out, formats=("png",)):
    """t_learn against each varying axis: seeds as dots, seed mean +- std, theory as a dashed line."""
    plt = _plt()
    axes_ = _varying(ds)
    if not axes_:
        return []
    fig, axs = plt.subplots(1, len(axes_), figsize=(4.2 * len(axes_), 3.6), squeeze=False)
    for ax, a in zip(axs[0], axes_):
        tl, desc = _fix_others(ds["t_learn"], (a,))
        vals = tl.transpose(a, "seed").values
        xs = ds[a].values
        for s in range(vals.shape[1]):
            ax.plot(xs, vals[:, s], ".", color="0.6", ms=4)
        ax.errorbar(xs, np.nanmean(vals, 1), yerr=np.nanstd(vals, 1), fmt="o-", color="C0", label="simulation (mean +- std)")
        if "theory_inf_t_learn" in ds and a in ("c", "w", "eta"):
            th = ds["theory_inf_t_learn"]
            th = th.isel({b: 0 for b in ("c", "w", "eta") if b != a}).values
            ax.plot(xs, th, "k--", label="theory N->inf, sigma=0")
        elif "theory_inf_t_learn" in ds:
            th = float(ds["theory_inf_t_learn"].isel(c=0, w=0, eta=0))
            ax.axhline(th, color="k", ls="--", label="theory N->inf, sigma=0")
        if "theory_t_learn" in ds:
            tt, _ = _fix_others(ds["theory_t_learn"], (a,))
            tt = tt.transpose(a, "seed").values
            ax.plot(xs, np.nanmean(tt, 1), "rx", label="theory, own initial condition")
        ax.set_xlabel(a)
        ax.set_ylabel("t_learn")
        ax.set_title(desc, fontsize=8)
    axs[0][0].legend(fontsize=7)
    return _save(fig, out, "t_learn_curves", formats, ds)


def outlier_trajectories(ds, out, formats=("png",)):
    """Re(outlier) vs t for each sigma (seed 0), simulation solid, theory dashed."""
    plt = _plt()
    o, desc = _fix_others(ds["outlier"], ("sigma",))
    o = o.isel(seed=0)
    t = ds["t"].values
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, s in enumerate(ds["sigma"].values):
        vals = o.sel(sigma=s).values
        axs[0].plot(t, vals.real, color=f"C{k % 10}", label=f"sigma={s:.3g}")
        axs[1].plot(vals.real, vals.imag, color=f"C{k % 10}")
    if "theory_outlier" in ds:
        th, _ = _fix_others(ds["theory_outlier"], ("sigma",))
        th = th.isel(seed=0)
        if 0.0 in ds["sigma"].values:
            v = th.sel(sigma=0.0).values
            axs[0].plot(t, v.real, "k:", lw=2, label="theory sigma=0 (own IC)")
    if "theory_inf_outlier" in ds:
        v = ds["theory_inf_outlier"].isel(c=0, w=0, eta=0).values
        axs[0].plot(t, v.real, "k--", label="theory N->inf, sigma=0")
        axs[1].plot(v.real, v.imag, "k--")
    axs[0].set_xlabel("t")
    axs[0].set_ylabel("Re outlier")
    axs[1].set_xlabel("Re")
    axs[1].set_ylabel("Im")
    axs[0].legend(fontsize=6)
    fig.suptitle("outlier trajectories" + (f" ({desc})" if desc else ""), fontsize=10)
    return _save(fig, out, "outlier", formats, ds)


def loss_curves(ds, out, formats=("png",)):
    plt = _plt()
    L, desc = _fix_others(ds["loss"], ("sigma",))
    t = ds["t"].values
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for k, s in enumerate(ds["sigma"].values):
        ax.semilogy(t, L.sel(sigma=s).isel(seed=0).values, color=f"C{k % 10}", label=f"sigma={s:.3g}")
    if "theory_inf_loss" in ds:
        ax.semilogy(t, ds["theory_inf_loss"].isel(c=0, w=0, eta=0).values, "k--", label="theory N->inf, sigma=0")
    ax.set_xlabel("t")
    ax.set_ylabel("loss")
    ax.legend(fontsize=6)
    ax.set_title(desc, fontsize=8)
    return _save(fig, out, "loss", formats, ds)


def spectra(ds, out, formats=("png",)):
    """Eigenvalues of W (bulk and outliers) at the stored times, one panel per time, seed 0."""
    if "spectrum" not in ds or ds.sizes.get("t_spectrum", 0) == 0:
        return []
    plt = _plt()
    sp, desc = _fix_others(ds["spectrum"], ("sigma",))
    ts = ds["t_spectrum"].values
    fig, axs = plt.subplots(1, len(ts), figsize=(3.6 * len(ts), 3.5), squeeze=False)
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax, k in zip(axs[0], range(len(ts))):
        for j, s in enumerate(ds["sigma"].values):
            ev = sp.sel(sigma=s).isel(seed=0, t_spectrum=k).values
            ax.plot(ev.real, ev.imag, ".", color=f"C{j % 10}", ms=3)
            if s > 0:
                ax.plot(s * np.cos(theta), s * np.sin(theta), color=f"C{j % 10}", lw=0.5)
        ax.axvline(1.0, color="k", lw=0.5)
        ax.set_title(f"t = {ts[k]:.3g}", fontsize=9)
        ax.set_aspect("equal")
    fig.suptitle("spectra of W (circles: bulk edge sigma)" + (f" ({desc})" if desc else ""), fontsize=10)
    return _save(fig, out, "spectra", formats, ds)


def plot_store(store, out, *, kinds=("phase",), formats=("png",), phase=()):
    """Draw the requested figure kinds from a store into folder `out`; returns the files written."""
    from .sweep import open_dataset

    import warnings

    ds = open_dataset(store).load()
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)
    warnings.filterwarnings("ignore", message=".*(empty slice|Degrees of freedom).*")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    var = _varying(ds)
    for kind in kinds:
        try:
            if kind == "phase":
                pairs = list(phase) or [(var[i], var[j]) for i in range(len(var)) for j in range(i + 1, len(var))]
                for x, y in pairs:
                    files += phase_diagram(ds, x, y, out, formats)
            elif kind == "curves":
                files += learning_time_curves(ds, out, formats)
            elif kind == "outlier":
                files += outlier_trajectories(ds, out, formats)
            elif kind == "loss":
                files += loss_curves(ds, out, formats)
            elif kind == "spectra":
                files += spectra(ds, out, formats)
        except Exception as e:  # noqa: BLE001 - one figure failing should not lose the others
            log.warning("figure %s failed: %s", kind, e)
    log.info("wrote %d figure files to %s", len(files), out)
    return files


def compare_table(store, per_seed: int = 8) -> str:
    """Theory vs simulation: per (N, c, w, eta), sigma = 0 cells only.

    Columns: `max|sim/own-1|` the largest per-network relative error of t_learn against the sigma = 0
    theory started from that network's own initial condition; `mean/inf-1` the seed-mean's relative
    error against the N -> inf theory, with its standard error (`sem`, std / sqrt(seeds) / mean).
    Below the table, each cell's per-network relative errors (the first `per_seed` seeds; 0: none).
    """
    from .sweep import open_dataset

    ds = open_dataset(store).load()
    if "theory_t_learn" not in ds or 0.0 not in ds["sigma"].values:
        return "no sigma = 0 theory in this store (needs theory.overlay and sigma = 0 in the grid)"
    lines = [
        f"{'N':>6} {'c':>7} {'w':>7} {'eta':>6} {'seeds':>5} {'max|sim/own-1|':>15} {'mean sim':>10} "
        f"{'theory inf':>10} {'mean/inf-1':>11} {'sem':>9} {'std/mean':>9}"
    ]
    detail = []
    sim = ds["t_learn"].sel(sigma=0.0).isel(optimizer=0)
    own = ds["theory_t_learn"].sel(sigma=0.0).isel(optimizer=0)
    for N in ds["N"].values:
        for c in ds["c"].values:
            for w in ds["w"].values:
                for e in ds["eta"].values:
                    s = sim.sel(N=N, c=c, w=w, eta=e).values
                    o = own.sel(N=N, c=c, w=w, eta=e).values
                    inf = float(ds["theory_inf_t_learn"].sel(c=c, w=w, eta=e)) if "theory_inf_t_learn" in ds else np.nan
                    n = int(np.isfinite(s).sum())
                    m = np.nanmean(s)
                    rel = s / o - 1
                    sem = np.nanstd(s, ddof=1) / np.sqrt(n) / m if n > 1 else np.nan
                    lines.append(
                        f"{N:6d} {c:7.3g} {w:7.3g} {e:6.3g} {n:5d} {np.nanmax(np.abs(rel)):15.2e} "
                        f"{m:10.5g} {inf:10.5g} {m / inf - 1:+11.3e} {sem:9.2e} {np.nanstd(s) / m:9.2e}"
                    )
                    if per_seed:
                        shown = " ".join(f"{r:+.1e}" for r in rel[:per_seed])
                        more = f" ... ({len(rel) - per_seed} more)" if len(rel) > per_seed else ""
                        detail.append(f"  N={N} c={c:.3g} w={w:.3g} eta={e:.3g}: {shown}{more}")
    if detail:
        lines += ["per-network sim/own-theory - 1 (t_learn), by seed:"] + detail
    return "\n".join(lines)
