"""`jaxrnn run | explain | theory | compare | plot | export | info` (docs/sweep.md).

Exit codes: 0 success; 2 bad config, bad arguments, or a store path that is not ours to write (one
line each on stderr, before any compute, no traceback); 130 interrupted (with how to resume); 1 an
unexpected error (one line; JAXRNN_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
    from .sweep import explain_text
    from .sweep._grid import estimate

    if args.chunk_size is not None and args.chunk_size < 1:
        raise UsageError(f"--chunk-size must be an integer >= 1, got {args.chunk_size}")
    spec = _load(args)
    store, figs = spec.paths(args.out)
    print(explain_text(spec, estimate(spec, chunk_size=args.chunk_size)))
    print(f"store: {store}  figures: {figs}")
    return 0


class UsageError(ValueError):
    """A command-line option out of range; one line, exit 2."""


def _check_run_options(args):
    """Every option of `run`, checked before anything is loaded or compiled."""
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UsageError(f"--chunk-size must be an integer >= 1, got {args.chunk_size}")
    if args.devices < 0:
        raise UsageError(f"--devices must be >= 0 (0: all local devices), got {args.devices}")
    if args.num_processes < 1:
        raise UsageError(f"--num-processes must be >= 1, got {args.num_processes}")
    if not 0 <= args.process_id < args.num_processes:
        raise UsageError(
            f"--process-id must be in [0, --num-processes = {args.num_processes}), got {args.process_id}"
        )
    if not args.coordinator and (args.num_processes != 1 or args.process_id != 0):
        raise UsageError(
            "--num-processes and --process-id need --coordinator HOST:PORT (the address of process 0)"
        )
    if args.coordinator:
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(
                f"--coordinator must be HOST:PORT with a port in [1, 65535], got {args.coordinator!r}"
            )


def _init_distributed(args):
    if not args.coordinator:
        return 0, 1
    import jax

    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )
    return jax.process_index(), jax.process_count()


def _cmd_run(args):
    from .sweep import run_sweep
    from .sweep._store import check_store_path

    _check_run_options(args)
    spec = _load(args)
    store, figs = spec.paths(args.out)
    check_store_path(store)
    if not args.no_plot:
        _check_figure_folder(figs)
    pi, pc = _init_distributed(args)  # before anything touches a jax backend
    _check_devices(args.devices)
    try:
        summary = run_sweep(
            spec,
            store,
            fresh=args.fresh,
            chunk_size=args.chunk_size,
            quiet=args.quiet,
            process_index=pi,
            process_count=pc,
            n_devices=args.devices or None,
        )
    except KeyboardInterrupt:
        print(_interrupted_line(store, " ".join(sys.argv[1:]) or "jaxrnn run ..."), file=sys.stderr)
        return 130
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

            files = plot_store(
                store, figs, kinds=spec.output.plots, formats=spec.output.formats, phase=spec.output.phase
            )
            if files:
                print(f"figures: {figs} ({len(files)} files)")
        else:
            log.info("store not complete yet (other processes still running); skipping figures")
    return 0


def _check_figure_folder(figs: Path):
    if figs.exists() and not figs.is_dir():
        raise UsageError(
            f"figure folder {figs} exists and is not a folder: choose another --out or output.figures"
        )
    existing = figs
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create figure folder {figs}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write figures to {figs}: no write permission on {existing}")


def _check_devices(n):
    if n:
        import jax

        have = len(jax.local_devices())
        if n > have:
            raise UsageError(f"--devices must be <= the {have} local device(s) here, got {n}")


def _interrupted_line(store, argv):
    done = total = None
    try:
        from .sweep._runner import store_progress

        done, total = store_progress(store)
    except Exception:  # noqa: BLE001 - the store may not exist yet
        pass
    saved = f"{done} of {total} cells are saved in {store}" if total else f"nothing was saved to {store} yet"
    return f"interrupted: {saved}; run the same command again to resume (jaxrnn {argv})"


def _cmd_theory(args):
    from .sweep._theory_store import run_theory_sweep, theory_spec

    spec = _load(args)
    tspec = theory_spec(spec)
    store, figs = tspec.paths(args.out)
    from .sweep._store import check_store_path

    check_store_path(store)
    if not args.no_plot:
        _check_figure_folder(figs)
    try:
        summary = run_theory_sweep(spec, store, fresh=args.fresh, quiet=args.quiet)
    except KeyboardInterrupt:
        print(_interrupted_line(store, " ".join(sys.argv[1:]) or "jaxrnn theory ..."), file=sys.stderr)
        return 130
    from .sweep import open_dataset

    ds = open_dataset(store).load()
    print("N -> inf theory: t_learn (first time L < 1e-2 L(0)) and the outlier at t_end")
    print(f"{'sigma':>8} {'c':>8} {'w':>8} {'eta':>8} {'t_learn':>10} {'outlier(t_end)':>22}")
    for s_ in ds["sigma"].values:
        for c in ds["c"].values:
            for w in ds["w"].values:
                for e in ds["eta"].values:
                    cell = ds.sel(sigma=s_, c=c, w=w, eta=e).isel(N=0, optimizer=0, seed=0)
                    o = complex(cell["outlier"].values[-1])
                    print(
                        f"{s_:8.4g} {c:8.4g} {w:8.4g} {e:8.4g} {float(cell['t_learn']):10.5g} {o.real:10.5f}{o.imag:+10.5f}j"
                    )
    print(
        f"theory store: {store} ({summary['solved']} cells solved, {summary['failed']} failed, {summary['wall_s']:.1f} s)"
    )
    if not args.no_plot:
        from .plots import plot_store

        phase = spec.output.phase or ()
        files = plot_store(store, figs, kinds=("phase", "curves"), formats=spec.output.formats, phase=phase)
        if files:
            print(f"figures: {figs} ({len(files)} files)")
    return 0


def _open_existing_store(path):
    """A finished or partial jaxrnn store to read; one line if it is not one."""
    from .sweep._store import StoreError, read_marker

    p = Path(path)
    if not p.exists():
        raise StoreError(f"store {path} does not exist")
    if not p.is_dir() or read_marker(p) is None:
        raise StoreError(f"{path} is not a jaxrnn store (no .jaxrnn-store marker)")
    from .sweep import open_dataset

    try:
        return open_dataset(p)
    except Exception as e:  # noqa: BLE001 - zarr/xarray raise many kinds for damaged metadata
        raise StoreError(f"store {path} cannot be read ({type(e).__name__}: {e})") from None


def _cmd_compare(args):
    from .plots import compare_table

    if args.per_seed < 0:
        raise UsageError(f"--per-seed must be >= 0, got {args.per_seed}")
    from .plots import partial_note

    note = partial_note(_open_existing_store(args.store))
    if note:
        print(f"{note}: the table covers the finished cells only")
    print(compare_table(args.store, per_seed=args.per_seed))
    return 0


def _cmd_plot(args):
    from .plots import partial_note, plot_store
    from .sweep._spec import AXES, PLOT_FORMATS, PLOT_KINDS

    ds = _open_existing_store(args.store)
    cfg = json.loads(ds.attrs["jaxrnn_config"])
    for opt, val, allowed in (("--kinds", args.kinds, PLOT_KINDS), ("--formats", args.formats, PLOT_FORMATS)):
        bad = [v for v in (val or "").split(",") if val and v not in allowed]
        if bad:
            raise UsageError(f"{opt} must be a comma list of {','.join(allowed)}, got {val!r}")
    for pair in args.phase or []:
        xy = pair.split(",")
        if len(xy) != 2 or xy[0] == xy[1] or any(a not in AXES[:5] for a in xy):
            raise UsageError(
                f"--phase must be two different axes from {','.join(AXES[:5])} as x,y, got {pair!r}"
            )
    note = partial_note(ds)
    if note:
        print(f"{note}: figures are marked partial")
    out = Path(args.out) if args.out else Path(args.store).with_suffix("")
    kinds = args.kinds.split(",") if args.kinds else cfg["output"]["plots"]
    formats = args.formats.split(",") if args.formats else cfg["output"]["formats"]
    phase = (
        [tuple(p.split(",")) for p in args.phase]
        if args.phase
        else [tuple(p) for p in cfg["output"]["phase"]]
    )
    if args.theory:
        _open_existing_store(args.theory)
    files = plot_store(args.store, out, kinds=kinds, formats=formats, phase=phase, theory=args.theory)
    for f in files:
        print(f)
    return 0


def _cmd_info(args):
    import jax

    from importlib.metadata import version

    if args.store:
        ds = _open_existing_store(args.store)
        done = ds["done"].values
        state = "complete" if done.all() else "partial"
        print(f"store {args.store}: {int(done.sum())} of {done.size} cells done ({state})")
        if args.verify:
            from .sweep._spec import spec_from_json
            from .sweep._store import _open_group, verify_cells

            spec = spec_from_json(ds.attrs["jaxrnn_config"])
            bad = verify_cells(_open_group(args.store, "r"), spec)
            if len(bad):
                print(
                    f"verify: {len(bad)} cell(s) marked done fail their checksum (missing or corrupt data): "
                    f"flat indices {bad[:20].tolist()}{' ...' if len(bad) > 20 else ''}; `jaxrnn run` recomputes them"
                )
                return 1
            print(f"verify: all {int(done.sum())} done cells match their checksums")
    elif args.verify:
        raise UsageError("--verify needs a store path")
    if args.store:
        for k, v in ds.attrs.items():
            if k != "jaxrnn_config":
                print(f"  {k}: {v}")
        print(f"  dims: {dict(ds.sizes)}")
        return 0
    print(f"jaxrnn {version('jaxrnn')}, jax {version('jax')}")
    print(f"backend {jax.default_backend()}: {len(jax.devices())} device(s), {jax.devices()[0].device_kind}")
    return 0


def _cmd_export(args):
    from .sweep._store import netcdf_safe, open_dataset

    _open_existing_store(args.store)
    out = Path(args.netcdf)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists: pass --overwrite to replace it, or choose another path")
    if out.exists() and out.is_dir():
        raise UsageError(f"{out} is a folder, not a file path")
    if not out.parent.exists():
        raise UsageError(f"folder {out.parent} does not exist")
    ds = netcdf_safe(open_dataset(args.store, squeeze=args.squeeze).load())
    ds.to_netcdf(out)
    print(f"wrote {out} ({len(ds.data_vars)} variables; complex ones as NAME_real, NAME_imag)")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxrnn")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _parser():
    p = argparse.ArgumentParser(
        prog="jaxrnn", description="Train populations of linear RNNs: sweeps, theory and figures."
    )
    p.add_argument("--version", action="version", version=f"jaxrnn {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def config_cmd(name, help_, *, output=True):
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("config", help="sweep TOML file (sweeps/*.toml)")
        s.add_argument(
            "overrides", nargs="*", help="section.key=value overrides, e.g. train.steps=200 grid.N=[16,32]"
        )
        if output:
            s.add_argument("--out", help="output folder: the store is OUT/NAME.zarr, figures OUT/NAME/")
            s.add_argument(
                "--chunk-size",
                type=int,
                default=None,
                help="networks per chunk, >= 1 (default: from run.memory_gb)",
            )
        return s

    r = config_cmd("run", "run (or resume) a sweep into its zarr store, then draw its figures")
    r.add_argument(
        "--fresh",
        action="store_true",
        help="discard an existing jaxrnn store at the path (never any other folder) and start afresh",
    )
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--no-plot", action="store_true", help="do not draw figures at the end")
    r.add_argument("--devices", type=int, default=0, help="use this many local devices (default 0: all)")
    r.add_argument("--coordinator", help="HOST:PORT of process 0 for a multi-process jax.distributed run")
    r.add_argument("--num-processes", type=int, default=1, help="number of processes (with --coordinator)")
    r.add_argument(
        "--process-id",
        type=int,
        default=0,
        help="this process's index in [0, --num-processes) (with --coordinator)",
    )
    r.set_defaults(func=_cmd_run)
    config_cmd(
        "explain", "print grid size, groups, compiles, memory and time estimates without running"
    ).set_defaults(func=_cmd_explain)
    th = config_cmd(
        "theory",
        "the N -> inf theory over a config's (sigma, c, w, eta) grid: a store with the simulation's "
        "layout (NAME-theory.zarr), a table and phase diagrams",
        output=False,
    )
    th.add_argument(
        "--out", help="output folder: the store is OUT/NAME-theory.zarr, figures OUT/NAME-theory/"
    )
    th.add_argument(
        "--fresh", action="store_true", help="discard an existing theory store at the path and start afresh"
    )
    th.add_argument("--quiet", action="store_true", help="no progress output")
    th.add_argument("--no-plot", action="store_true", help="do not draw figures")
    th.set_defaults(func=_cmd_theory)
    c = sub.add_parser(
        "compare",
        help="theory vs simulation table for a store",
        description="theory vs simulation table for a store",
    )
    c.add_argument("store", help="a jaxrnn results store (.zarr folder)")
    c.add_argument(
        "--per-seed",
        type=int,
        default=8,
        help="list the per-network errors of the first N seeds of each cell (0: none)",
    )
    c.set_defaults(func=_cmd_compare)
    pl = sub.add_parser(
        "plot",
        help="draw figures from a store",
        description="draw phase diagrams, curves, outliers and spectra from a store",
    )
    pl.add_argument("store", help="a jaxrnn results store (.zarr folder)")
    pl.add_argument("--out", help="figure folder (default: the store path without .zarr)")
    pl.add_argument("--kinds", help="comma list of phase,curves,outlier,spectra,loss")
    pl.add_argument("--formats", help="comma list of png,pdf,svg")
    pl.add_argument("--phase", action="append", help="axis pair x,y for a phase diagram (repeatable)")
    pl.add_argument(
        "--theory", help="a `jaxrnn theory` store of the same grid: adds theory-vs-simulation maps"
    )
    pl.set_defaults(func=_cmd_plot)
    e = sub.add_parser(
        "export",
        help="write a store as a NetCDF file",
        description="write a store as a NetCDF file (complex variables split into NAME_real and NAME_imag)",
    )
    e.add_argument("store", help="a jaxrnn results store (.zarr folder)")
    e.add_argument("netcdf", help="output file, e.g. results/quickstart.nc")
    e.add_argument(
        "--squeeze", action="store_true", help="drop grid axes of size 1 (kept as scalar coordinates)"
    )
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.set_defaults(func=_cmd_export)
    i = sub.add_parser("info", help="versions and devices, or a store's provenance and progress")
    i.add_argument(
        "store", nargs="?", help="a jaxrnn results store (.zarr folder); without it: versions and devices"
    )
    i.add_argument(
        "--verify",
        action="store_true",
        help="recompute every done cell's checksum and report missing or corrupt data",
    )
    i.set_defaults(func=_cmd_info)
    return p


def compilation_cache_env(env) -> dict[str, str]:
    """The environment the command adds for JAX's persistent compilation cache (docs/sweep.md).

    Compilation dominates a small sweep (the quickstart's programs take ~16 s to compile on one core and
    seconds to run), so the command keeps compiled programs on disk, in $XDG_CACHE_HOME/jaxrnn/xla (default
    ~/.cache/jaxrnn/xla), and a later run with the same shapes loads them. JAX keys every entry by the program,
    its compile options, the devices and the jax/jaxlib versions. An explicit JAX_COMPILATION_CACHE_DIR wins;
    JAXRNN_CACHE=0 turns the cache off. Only the `jaxrnn` command does this: `import jaxrnn` changes nothing."""
    if "JAX_COMPILATION_CACHE_DIR" in env or env.get("JAXRNN_CACHE", "1") == "0":
        return {}
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return {
        "JAX_COMPILATION_CACHE_DIR": os.path.join(base, "jaxrnn", "xla"),
        # programs that compile faster than this are not worth a disk round trip
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": env.get(
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5"
        ),
    }


def main(argv=None) -> int:
    # before numpy/jax load (jaxrnn's own import loads neither): see jaxrnn/__init__.py; an explicit setting wins
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.update(compilation_cache_env(os.environ))
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options; anything else left over is an error (exit 2)
    bad = [e for e in extra if "=" not in e or e.startswith("-") or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    _setup_logging(getattr(args, "quiet", False))
    from .sweep import ConfigError
    from .sweep._store import StoreError

    try:
        return args.func(args)
    except ConfigError as e:
        for issue in e.issues:
            print(str(issue), file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"store error: {e}", file=sys.stderr)
        return 2
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user; the traceback on request
        if os.environ.get("JAXRNN_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e} (set JAXRNN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
