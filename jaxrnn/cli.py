"""`jaxrnn run | explain | theory | compare | plot | info` (docs/sweep.md).

Exit codes: 0 success, 2 bad config / bad arguments / store of another config (one line each on
stderr, no traceback), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("jaxrnn.cli")


def _setup_logging(quiet: bool):
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="jaxrnn: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("jax", "absl", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args):
    from .sweep import load_spec

    spec = load_spec(args.config, args.overrides)
    import jax

    jax.config.update("jax_enable_x64", spec.train.dtype == "float64")
    return spec


def _cmd_explain(args):
    from .sweep import explain_text, plan_sweep

    spec = _load(args)
    plan = plan_sweep(spec, chunk_size=args.chunk_size)
    store, figs = spec.paths(args.out)
    print(explain_text(spec, plan))
    print(f"store: {store}  figures: {figs}")
    return 0


def _init_distributed(args):
    if not args.coordinator:
        return 0, 1
    import jax

    jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id)
    return jax.process_index(), jax.process_count()


def _cmd_run(args):
    from .sweep import run_sweep

    spec = _load(args)
    pi, pc = _init_distributed(args)
    store, figs = spec.paths(args.out)
    summary = run_sweep(
        spec, store, fresh=args.fresh, chunk_size=args.chunk_size, quiet=args.quiet,
        process_index=pi, process_count=pc, n_devices=args.devices or None,
    )
    if summary.nothing_to_do:
        print(f"nothing to do: {store} is complete ({summary.chunks_total} chunks done)")
    else:
        print(
            f"ran {summary.chunks_run} chunk(s), {summary.networks_run} networks in {summary.wall_s:.1f} s "
            f"(compile ~{summary.compile_s:.1f} s, {summary.diverged} diverged) -> {store}"
        )
    if pi == 0 and not args.no_plot and not (summary.nothing_to_do and figs.exists()):
        from .sweep._runner import pending_cells

        if pending_cells(store) == 0:
            from .plots import plot_store

            files = plot_store(store, figs, kinds=spec.output.plots, formats=spec.output.formats, phase=spec.output.phase)
            if files:
                print(f"figures: {figs} ({len(files)} files)")
        else:
            log.info("store not complete yet (other processes still running); skipping figures")
    return 0


def _cmd_theory(args):
    from .sweep import theory_infinite

    spec = _load(args)
    th = theory_infinite(spec)
    if th is None:
        print("no theory for this config (needs loss = exact, optimizer = flow, mean_field scaling, and jaxrnn.theory)")
        return 0
    g = spec.grid
    print("N -> inf, sigma = 0 theory: t_learn (first time L < 1e-2 L(0))")
    print(f"{'c':>8} {'w':>8} {'eta':>8} {'t_learn':>10} {'outlier(t_end)':>22}")
    for i, c in enumerate(g.c):
        for j, w in enumerate(g.w):
            for k, e in enumerate(g.eta):
                o = th["theory_inf_outlier"][i, j, k, -1]
                print(f"{c:8.4g} {w:8.4g} {e:8.4g} {th['theory_inf_t_learn'][i, j, k]:10.5g} {o.real:10.5f}{o.imag:+10.5f}j")
    return 0


def _cmd_compare(args):
    from .plots import compare_table

    print(compare_table(args.store, per_seed=args.per_seed))
    return 0


def _cmd_plot(args):
    from .plots import plot_store
    from .sweep import open_dataset

    ds = open_dataset(args.store)
    cfg = json.loads(ds.attrs["jaxrnn_config"])
    out = Path(args.out) if args.out else Path(args.store).with_suffix("")
    kinds = args.kinds.split(",") if args.kinds else cfg["output"]["plots"]
    formats = args.formats.split(",") if args.formats else cfg["output"]["formats"]
    phase = [tuple(p.split(",")) for p in args.phase] if args.phase else [tuple(p) for p in cfg["output"]["phase"]]
    files = plot_store(args.store, out, kinds=kinds, formats=formats, phase=phase)
    for f in files:
        print(f)
    return 0


def _cmd_info(args):
    import jax

    from importlib.metadata import version

    if args.store:
        from .sweep import open_dataset

        ds = open_dataset(args.store)
        done = ds["done"].values
        print(f"store {args.store}: {int(done.sum())}/{done.size} cells done")
        for k, v in ds.attrs.items():
            if k != "jaxrnn_config":
                print(f"  {k}: {v}")
        print(f"  dims: {dict(ds.sizes)}")
        return 0
    print(f"jaxrnn {version('jaxrnn')}, jax {version('jax')}")
    print(f"backend {jax.default_backend()}: {len(jax.devices())} device(s), {jax.devices()[0].device_kind}")
    return 0


def _parser():
    p = argparse.ArgumentParser(prog="jaxrnn", description="Train populations of linear RNNs: sweeps, theory and figures.")
    sub = p.add_subparsers(dest="command", required=True)

    def config_cmd(name, help_):
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("config", help="sweep TOML file (sweeps/*.toml)")
        s.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.steps=200 grid.N=[16,32]")
        s.add_argument("--out", help="output folder: the store is OUT/NAME.zarr, figures OUT/NAME/")
        s.add_argument("--chunk-size", type=int, default=None, help="networks per chunk (default: from run.memory_gb)")
        return s

    r = config_cmd("run", "run (or resume) a sweep into its zarr store, then draw its figures")
    r.add_argument("--fresh", action="store_true", help="discard an existing store (even of another config) and start afresh")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    r.add_argument("--devices", type=int, default=0, help="use this many local devices (default: all)")
    r.add_argument("--coordinator", help="host:port of process 0 for a multi-process jax.distributed run")
    r.add_argument("--num-processes", type=int, default=1)
    r.add_argument("--process-id", type=int, default=0)
    r.set_defaults(func=_cmd_run)
    config_cmd("explain", "print grid size, groups, compiles, memory and time estimates without running").set_defaults(func=_cmd_explain)
    config_cmd("theory", "print the N -> inf sigma = 0 theory's learning times for a config's (c, w, eta)").set_defaults(func=_cmd_theory)
    c = sub.add_parser("compare", help="theory vs simulation table for a store", description="theory vs simulation table for a store")
    c.add_argument("store")
    c.add_argument("--per-seed", type=int, default=8, help="list the per-network errors of the first N seeds of each cell (0: none)")
    c.set_defaults(func=_cmd_compare)
    pl = sub.add_parser("plot", help="draw figures from a store", description="draw phase diagrams, curves, outliers and spectra from a store")
    pl.add_argument("store")
    pl.add_argument("--out", help="figure folder (default: the store path without .zarr)")
    pl.add_argument("--kinds", help="comma list of phase,curves,outlier,spectra,loss")
    pl.add_argument("--formats", help="comma list of png,pdf")
    pl.add_argument("--phase", action="append", help="axis pair x,y for a phase diagram (repeatable)")
    pl.set_defaults(func=_cmd_plot)
    i = sub.add_parser("info", help="versions and devices, or a store's provenance and progress")
    i.add_argument("store", nargs="?")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv=None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options; anything else left over is an error (exit 2)
    bad = [e for e in extra if "=" not in e or e.startswith("-") or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    _setup_logging(getattr(args, "quiet", False))
    from .sweep import ConfigError, StoreMismatch

    try:
        return args.func(args)
    except ConfigError as e:
        for issue in e.issues:
            print(str(issue), file=sys.stderr)
        return 2
    except StoreMismatch as e:
        print(f"store error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError) as e:
        if args.command in ("plot", "compare", "info"):
            print(f"error: cannot read store {getattr(args, 'store', '')}: {e}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
