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

from .variables import GRID_AXES

__all__ = [
    "plot_store",
    "phase_diagram",
    "theory_vs_simulation",
    "learning_time_curves",
    "outlier_trajectories",
    "spectra",
    "loss_curves",
    "compare_table",
]

log = logging.getLogger(__name__)
GRID = GRID_AXES


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
    """ "partial: k of n cells" for a store whose run has not finished, else None."""
    done = ds["done"].values
    return None if done.all() else f"partial store: {int(done.sum())} of {done.size} cells done"


def _save(fig, out, stem, formats, ds=None):
    note = partial_note(ds) if ds is not None else None
    if note:  # a figure of an unfinished sweep says so on its face
        fig.text(0.5, 0.995, note.upper(), ha="center", va="top", color="#b2182b", fontsize=11, weight="bold")
    files = []
    for fmt in formats:
        p = Path(out) / f"{stem}.{fmt}"
        # every figure is laid out by constrained_layout: no bbox_inches="tight" (it drew each figure twice)
        fig.savefig(p, dpi=120)
        files.append(p)
    _plt().close(fig)
    return files


def _varying(ds):
    return [a for a in GRID[:5] if ds.sizes[a] > 1]


# axis labels with units, one place for every figure
LABELS = {
    "N": "network size N",
    "sigma": r"initial scale $\sigma$",
    "c": "target decay rate c",
    "w": r"target frequency $\omega$",
    "eta": r"learning rate $\eta$",
    "t": "flow time t (network time constants)",
    "t_learn": r"$t_{\rm learn}$ (flow time)",
    "lazy": r"$|W(t_{\rm end}) - W_0|_{\rm op} / \sigma$",
}
CMAP_T, CMAP_LAZY = "viridis", "cividis"  # perceptually uniform, colour-blind safe


def _is_geometric(v) -> bool:
    v = np.asarray(v, dtype=float)
    if len(v) < 3 or np.any(v <= 0):
        return False
    r = v[1:] / v[:-1]
    return bool(np.allclose(r, r[0], rtol=1e-3)) and not np.allclose(np.diff(v), np.diff(v)[0], rtol=1e-3)


def _edges(v):
    """Cell edges for a pcolormesh over grid values `v`, halfway between values (in log for a geometric grid)."""
    v = np.asarray(v, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5]) if v[0] else np.array([-0.5, 0.5])
    w = np.log(v) if _is_geometric(v) else v
    mid = (w[1:] + w[:-1]) / 2
    e = np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])
    return np.exp(e) if _is_geometric(v) else e


def _scale(ax, axis, values):
    if _is_geometric(values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _hatch_missing(ax, xs, ys, missing):
    """Hatch the cells (j over ys, i over xs) where `missing`: undefined or not computed, never a colour
    of the scale."""
    from matplotlib.patches import Rectangle

    ex, ey = _edges(xs), _edges(ys)
    for j, i in zip(*np.nonzero(missing)):
        ax.add_patch(
            Rectangle(
                (float(ex[i]), float(ey[j])),
                float(ex[i + 1] - ex[i]),
                float(ey[j + 1] - ey[j]),
                fill=False,
                hatch="//",
                edgecolor="0.55",
                lw=0,
            )
        )


def phase_diagram(ds, x, y, out, formats=("png",)):
    """Heatmaps over (x, y) on the grid's own scale (log where geometric): the seed-mean t_learn, with
    the N -> inf sigma = 0 theory's t_learn beside it where it applies (the sigma = 0 cells), and
    |W(t_end) - W0|_op / sigma (undefined at sigma = 0, hatched), both with the rich/lazy boundary
    |dW|_op / sigma = 1 drawn as a contour."""
    plt = _plt()
    tl, desc = _fix_others(ds["t_learn"], (x, y))
    tl = tl.mean("seed", skipna=True).transpose(y, x).values
    xs, ys = ds[x].values.astype(float), ds[y].values.astype(float)
    theory_only = "dW_op_over_sigma" not in ds  # a `jaxrnn theory` store
    if theory_only:
        lazy = np.full_like(tl, np.nan)
        fig, ax0 = plt.subplots(1, 1, figsize=(6, 4.4), constrained_layout=True)
        axes = [ax0]
        panels = ((ax0, tl, r"learning time, $N\to\infty$ theory", CMAP_T, LABELS["t_learn"]),)
    else:
        lazy, _ = _fix_others(ds["dW_op_over_sigma"], (x, y))
        lazy = lazy.mean("seed", skipna=True).transpose(y, x).values
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
        panels = (
            (axes[0], tl, "learning time (simulation, seed mean)", CMAP_T, LABELS["t_learn"]),
            (axes[1], lazy, "weight change relative to the initial scale", CMAP_LAZY, LABELS["lazy"]),
        )
    X, Y = np.meshgrid(xs, ys)
    for ax, val, title, cmap, clabel in panels:
        if val is tl and np.isnan(tl).any():  # say what a hatched learning-time cell means
            title += "\nhatched: no t_learn (L stayed above 1e-2 L(0) until t_end, or the run failed)"
        ax.set_facecolor("0.85")
        masked = np.ma.masked_invalid(val)
        im = ax.pcolormesh(_edges(xs), _edges(ys), masked, cmap=cmap, shading="flat")
        fig.colorbar(im, ax=ax, label=clabel)
        ex, ey = _edges(xs), _edges(ys)
        _hatch_missing(ax, xs, ys, np.isnan(val))
        if len(axes) > 1 and ax is axes[1] and "sigma" in (x, y) and 0.0 in ds["sigma"].values:
            ax.text(
                0.0
                if x == "sigma"
                else np.sqrt(ex[0] * ex[-1])
                if _is_geometric(xs)
                else (ex[0] + ex[-1]) / 2,
                (ey[0] + ey[-1]) / 2 if x == "sigma" else 0.0,
                r"undefined at $\sigma = 0$",
                rotation=90 if x == "sigma" else 0,
                ha="center",
                va="center",
                fontsize=7,
                color="0.3",
            )
        _scale(ax, "x", xs)
        _scale(ax, "y", ys)
        ax.set_xlabel(LABELS.get(x, str(x)))
        ax.set_ylabel(LABELS.get(y, str(y)))
        ax.set_title(title, fontsize=10)
        if np.isfinite(lazy).sum() >= 4 and min(lazy.shape) > 1 and np.nanmin(lazy) < 1 < np.nanmax(lazy):
            cs = ax.contour(X, Y, lazy, levels=[1.0], colors=["w" if ax is axes[0] else "k"], linewidths=1.5)
            ax.clabel(cs, fmt={1.0: "rich | lazy"}, fontsize=7)
        _bulk_edge_line(ds, ax, x, y, xs, ys)
    if not theory_only and "theory_inf_t_learn" in ds and "sigma" in (x, y) and 0.0 in ds["sigma"].values:
        # the sigma = 0 theory predicts the sigma = 0 cells only: mark them with the theory's value
        other = y if x == "sigma" else x
        th = ds["theory_inf_t_learn"]
        th = th.isel({a: 0 for a in ("c", "w", "eta") if a in th.dims and a != other})
        vals = th.values if other in th.dims else np.full(len(ds[other]), float(th.values))
        ov = ds[other].values.astype(float)
        pts = (np.zeros_like(ov), ov) if x == "sigma" else (ov, np.zeros_like(ov))
        sc = axes[0].scatter(
            *pts,
            c=vals,
            cmap=CMAP_T,
            vmin=np.nanmin(tl),
            vmax=np.nanmax(tl),
            marker="D",
            s=40,
            edgecolors="w",
            linewidths=1.2,
            zorder=3,
            label=r"theory ($N\to\infty$, $\sigma=0$)",
        )
        axes[0].legend(handles=[sc], fontsize=7, loc="upper right", framealpha=0.8)
    fig.suptitle(f"phase diagram over ({x}, {y})" + (f"; {desc}" if desc else ""), fontsize=10)
    return _save(fig, out, f"phase_{x}_{y}", formats, ds)


def _bulk_edge_line(ds, ax, x, y, xs, ys):
    """The analytic rich/lazy boundary in a plane with sigma: the initial bulk (a disk of radius sigma)
    reaches the target eigenvalue 1 - c + i w, sigma* = |1 - c + i w| (docs/concepts.md §7). Beyond it no
    outlier has to leave the bulk: learning is lazy."""
    other = y if x == "sigma" else x if y == "sigma" else None
    if other not in ("c", "w"):
        return
    fixed = {a: float(ds[a].values[0]) for a in ("c", "w")}
    ov = np.linspace(ds[other].values.min(), ds[other].values.max(), 200)
    c = ov if other == "c" else fixed["c"]
    w = ov if other == "w" else fixed["w"]
    sig = np.abs(1 - c + 1j * w)
    keep = (sig >= min(ds["sigma"].values)) & (sig <= max(ds["sigma"].values))
    if keep.sum() < 2:
        return
    pts = (sig[keep], ov[keep]) if x == "sigma" else (ov[keep], sig[keep])
    ax.plot(*pts, color="C3", ls="--", lw=1.5, label=r"bulk edge meets target: $\sigma = |1 - c + i\omega|$")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.8)


def learning_time_curves(ds, out, formats=("png",)):
    """t_learn against each varying axis: seeds as dots, seed mean with its standard deviation, and the
    theory only where it applies (the sigma = 0 theory at sigma = 0; along c, w, eta for sigma = 0)."""
    plt = _plt()
    axes_ = _varying(ds)
    if not axes_:
        return []
    fig, axs = plt.subplots(
        1, len(axes_), figsize=(4.4 * len(axes_), 3.8), squeeze=False, constrained_layout=True
    )
    has_zero = 0.0 in ds["sigma"].values
    for ax, a in zip(axs[0], axes_):
        tl, desc = _fix_others(ds["t_learn"], (a,))
        vals = tl.transpose(a, "seed").values
        xs = ds[a].values.astype(float)
        for s in range(vals.shape[1]):
            ax.plot(
                xs,
                vals[:, s],
                ".",
                color="0.6",
                ms=4,
                zorder=1,
                label="simulation, each seed" if s == 0 else None,
            )
        mean, std = np.nanmean(vals, 1), np.nanstd(vals, 1)
        ax.fill_between(xs, mean - std, mean + std, color="C0", alpha=0.2, lw=0, zorder=2)
        ax.plot(xs, mean, "o-", color="C0", zorder=3, label="simulation, seed mean $\\pm$ std")
        if (
            "theory_inf_t_learn" in ds
            and a in ("c", "w", "eta")
            and (has_zero and tl["sigma"].item() == 0.0 if "sigma" in tl.coords else has_zero)
        ):
            th = ds["theory_inf_t_learn"].isel({b: 0 for b in ("c", "w", "eta") if b != a}).values
            ax.plot(xs, th, "--", color="C3", zorder=4, label=r"theory $N\to\infty$, $\sigma=0$")
        elif "theory_inf_t_learn" in ds and a == "sigma" and has_zero:
            th = float(ds["theory_inf_t_learn"].isel(c=0, w=0, eta=0))
            ax.plot(
                [0.0],
                [th],
                "D",
                color="C3",
                ms=7,
                zorder=4,
                label=r"theory $N\to\infty$ (at $\sigma=0$ only)",
            )
        if "theory_t_learn" in ds:
            tt, _ = _fix_others(ds["theory_t_learn"], (a,))
            tt = tt.transpose(a, "seed").values
            ok = np.isfinite(tt).any(1)
            if ok.any():
                ax.plot(
                    xs[ok],
                    np.nanmean(tt[ok], 1),
                    "x",
                    color="C1",
                    ms=8,
                    mew=2,
                    zorder=5,
                    label=r"theory, each network's own $\sigma=0$ start",
                )
        _scale(ax, "x", xs)
        ax.set_xlabel(LABELS.get(a, str(a)))
        ax.set_ylabel(LABELS["t_learn"])
        ax.set_title(desc, fontsize=8)
    axs[0][0].legend(fontsize=7)
    return _save(fig, out, "t_learn_curves", formats, ds)


def outlier_trajectories(ds, out, formats=("png",)):
    """Re(outlier) vs t for each sigma (seed 0), simulation solid, theory dashed; the complex plane beside."""
    plt = _plt()
    o, desc = _fix_others(ds["outlier"], ("sigma",))
    o = o.isel(seed=0)
    sep = None
    if "outlier_separated" in ds:
        sep, _ = _fix_others(ds["outlier_separated"], ("sigma",))
        sep = sep.isel(seed=0)
    t = ds["t"].values
    fig, axs = plt.subplots(1, 2, figsize=(10.5, 4), constrained_layout=True)
    cmap = plt.get_cmap(CMAP_T)
    sig = ds["sigma"].values
    marked = False
    for k, s in enumerate(sig):
        col = cmap(0.9 * k / max(len(sig) - 1, 1))
        vals = o.sel(sigma=s).values
        axs[0].plot(t, vals.real, color=col, label=f"$\\sigma$ = {s:.3g}")
        axs[1].plot(vals.real, vals.imag, color=col)
        if sep is not None:
            # where the top eigenvalue is not separated from the bulk, the curve is the bulk's edge
            bad = sep.sel(sigma=s).values == 0
            if bad.any():
                kw = dict(marker="x", ls="none", ms=4, color=col)
                axs[0].plot(t[bad], vals.real[bad], **kw)
                axs[1].plot(vals.real[bad], vals.imag[bad], **kw)
                if not marked:  # one legend entry, in a neutral colour
                    axs[0].plot([], [], marker="x", ls="none", color="k", label="not separated from the bulk")
                marked = True
    if "theory_outlier" in ds and 0.0 in sig:
        th, _ = _fix_others(ds["theory_outlier"], ("sigma",))
        v = th.isel(seed=0).sel(sigma=0.0).values
        axs[0].plot(t, v.real, ":", color="C1", lw=2, label=r"theory $\sigma=0$, own start")
    if "theory_inf_outlier" in ds:
        v = ds["theory_inf_outlier"].isel(c=0, w=0, eta=0).values
        axs[0].plot(t, v.real, "--", color="C3", label=r"theory $N\to\infty$, $\sigma=0$")
        axs[1].plot(v.real, v.imag, "--", color="C3")
    axs[0].set_xlabel(LABELS["t"])
    axs[0].set_ylabel(r"Re $\lambda_{\rm out}$")
    axs[1].set_xlabel(r"Re $\lambda_{\rm out}$")
    axs[1].set_ylabel(r"Im $\lambda_{\rm out}$")
    axs[0].legend(fontsize=7)
    fig.suptitle("outlier eigenvalue of W, seed 0" + (f"; {desc}" if desc else ""), fontsize=10)
    return _save(fig, out, "outlier", formats, ds)


def loss_curves(ds, out, formats=("png",)):
    """L(t) for each sigma (seed 0) on a log scale, with the N -> inf sigma = 0 theory."""
    plt = _plt()
    L, desc = _fix_others(ds["loss"], ("sigma",))
    t = ds["t"].values
    fig, ax = plt.subplots(figsize=(5.2, 3.9), constrained_layout=True)
    cmap = plt.get_cmap(CMAP_T)
    sig = ds["sigma"].values
    for k, s in enumerate(sig):
        ax.semilogy(
            t,
            L.sel(sigma=s).isel(seed=0).values,
            color=cmap(0.9 * k / max(len(sig) - 1, 1)),
            label=f"$\\sigma$ = {s:.3g}",
        )
    if "theory_inf_loss" in ds:
        ax.semilogy(
            t,
            ds["theory_inf_loss"].isel(c=0, w=0, eta=0).values,
            "--",
            color="C3",
            label=r"theory $N\to\infty$, $\sigma=0$",
        )
    ax.set_xlabel(LABELS["t"])
    ax.set_ylabel("population loss L(t)")
    ax.legend(fontsize=7)
    ax.set_title(desc, fontsize=8)
    return _save(fig, out, "loss", formats, ds)


def spectra(ds, out, formats=("png",)):
    """Eigenvalues of W (bulk and outliers) at the stored times, one panel per time, seed 0."""
    if "spectrum" not in ds or ds.sizes.get("t_spectrum", 0) == 0:
        return []
    plt = _plt()
    sp, desc = _fix_others(ds["spectrum"], ("sigma",))
    ts = ds["t_spectrum"].values
    fig, axs = plt.subplots(1, len(ts), figsize=(3.8 * len(ts), 3.9), squeeze=False, constrained_layout=True)
    theta = np.linspace(0, 2 * np.pi, 200)
    cmap = plt.get_cmap(CMAP_T)
    sig = ds["sigma"].values
    for ax, k in zip(axs[0], range(len(ts))):
        for j, s in enumerate(sig):
            col = cmap(0.9 * j / max(len(sig) - 1, 1))
            ev = sp.sel(sigma=s).isel(seed=0, t_spectrum=k).values
            ax.plot(ev.real, ev.imag, ".", color=col, ms=3, label=f"$\\sigma$ = {s:.3g}")
            if s > 0:
                ax.plot(s * np.cos(theta), s * np.sin(theta), color=col, lw=0.6)
        ax.axvline(1.0, color="k", lw=0.6, ls=":")
        ax.set_title(f"t = {ts[k]:.3g}", fontsize=9)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_ylabel(r"Im $\lambda$")
        ax.set_aspect("equal")
    axs[0][-1].legend(fontsize=7, loc="lower left", markerscale=2)
    fig.suptitle(
        r"spectra of W, seed 0 (circles: bulk edge $\sigma$; dotted: Re $\lambda$ = 1, the stability edge)"
        + (f"; {desc}" if desc else ""),
        fontsize=10,
    )
    return _save(fig, out, "spectra", formats, ds)


def theory_vs_simulation(ds, th, x, y, out, formats=("png",)):
    """The relative difference of the simulation's seed-mean t_learn from the N -> inf theory's over
    (x, y): (sim - theory) / theory, from a `jaxrnn theory` store `th` of the same grid (a subtraction,
    since both stores share names and layout). Cells the theory does not cover are hatched."""
    plt = _plt()
    sim, desc = _fix_others(ds["t_learn"], (x, y))
    sim = sim.mean("seed", skipna=True)
    thv = th["t_learn"].isel(seed=0, N=0)
    for a in GRID[1:]:
        if a not in (x, y) and a in thv.dims:
            thv = thv.sel({a: sim[a].item() if a in sim.coords else thv[a].values[0]})
    thv = thv.reindex({a: sim[a].values for a in (x, y) if a != "N"}, method="nearest", tolerance=1e-9)
    sim, thv = sim.transpose(y, x).values, thv.transpose(y, x).values
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (sim - thv) / thv
    xs, ys = ds[x].values.astype(float), ds[y].values.astype(float)
    fig, ax = plt.subplots(figsize=(6.2, 4.4), constrained_layout=True)
    ax.set_facecolor("0.85")
    lim = float(np.nanmax(np.abs(rel))) if np.isfinite(rel).any() else 1.0
    im = ax.pcolormesh(
        _edges(xs), _edges(ys), np.ma.masked_invalid(rel), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat"
    )
    fig.colorbar(
        im,
        ax=ax,
        label=r"$(t_{\rm learn}^{\rm sim} - t_{\rm learn}^{\rm theory}) / t_{\rm learn}^{\rm theory}$",
    )
    _hatch_missing(ax, xs, ys, ~np.isfinite(rel))
    _scale(ax, "x", xs)
    _scale(ax, "y", ys)
    _bulk_edge_line(ds, ax, x, y, xs, ys)
    ax.set_xlabel(LABELS.get(x, str(x)))
    ax.set_ylabel(LABELS.get(y, str(y)))
    ax.set_title(
        r"simulation (N = "
        + ", ".join(str(int(n)) for n in ds["N"].values)
        + r") vs $N\to\infty$ theory"
        + (f"; {desc}" if desc else ""),
        fontsize=9,
    )
    return _save(fig, out, f"theory_vs_sim_{x}_{y}", formats, ds)


def plot_store(store, out, *, kinds=("phase",), formats=("png",), phase=(), theory=None):
    """Draw the requested figure kinds from a store into folder `out`; returns the files written.
    `theory`: a `jaxrnn theory` store of the same grid, drawn against the simulation (phase kind)."""
    from .sweep import open_dataset

    import warnings

    ds = open_dataset(store).load()
    th = open_dataset(theory).load() if theory is not None else None
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)
    warnings.filterwarnings("ignore", message=".*(empty slice|Degrees of freedom).*")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    var = _varying(ds)
    for kind in kinds:
        try:
            if kind == "phase":
                pairs = list(phase) or [
                    (var[i], var[j]) for i in range(len(var)) for j in range(i + 1, len(var))
                ]
                for x, y in pairs:
                    files += phase_diagram(ds, x, y, out, formats)
                    if th is not None:
                        files += theory_vs_simulation(ds, th, x, y, out, formats)
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
                    inf = (
                        float(ds["theory_inf_t_learn"].sel(c=c, w=w, eta=e))
                        if "theory_inf_t_learn" in ds
                        else np.nan
                    )
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
