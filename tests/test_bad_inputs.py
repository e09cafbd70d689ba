"""Bad input, tried as a new user would: every case gets one line naming what is wrong (exit 2, or a
ValueError naming the argument), before anything compiles, with no traceback and nothing written."""

import pytest

from jaxrnn.cli import main
from jaxrnn.sweep import ConfigError, spec_from_dict

GOOD = {
    "name": "bad",
    "grid": {"N": [4], "sigma": [0.0, 0.3], "c": [0.5], "seed": {"count": 2}},
    "train": {"dt": 0.02, "steps": 10, "n_log": 3},
    "theory": {"overlay": "none"},
}

# (section, key, value, text the one line must contain)
FIELDS = [
    ("grid", "N", [[4]], "grid.N"),
    ("grid", "N", "16", "grid.N"),
    ("grid", "N", {"count": 3}, "grid.N"),
    ("grid", "N", {"linspace": [2, 8, 0]}, "grid.N"),
    ("grid", "N", [4, 4], "distinct"),
    ("grid", "N", [True], "grid.N"),
    ("grid", "sigma", {"linspace": [0, 0.5, 20000]}, "grid.sigma"),
    ("grid", "sigma", {"logspace": [-1, 0]}, "grid.sigma"),
    ("grid", "sigma", {"linspace": [0, 0.5, 2.5]}, "grid.sigma"),
    ("grid", "sigma", {"linspace": "0,1,3"}, "grid.sigma"),
    ("grid", "sigma", [None], "grid.sigma"),
    ("grid", "sigma", [float("nan")], "grid.sigma"),
    ("grid", "sigma", [float("inf")], "grid.sigma"),
    ("grid", "c", [float("inf")], "grid.c"),
    ("grid", "c", ["0.1"], "grid.c"),
    ("grid", "c", [200.0], "grid.c"),
    ("grid", "c", {}, "grid.c"),
    ("grid", "w", [-1.0], "grid.w"),
    ("grid", "w", [2000.0], "grid.w"),
    ("grid", "eta", [-1.0], "grid.eta"),
    ("grid", "eta", [1e5], "grid.eta"),
    ("grid", "seed", [1.5], "grid.seed"),
    ("grid", "seed", {"count": 200000}, "grid.seed"),
    ("grid", "seed", {"count": True}, "grid.seed"),
    ("grid", "seed", [2**31], "grid.seed"),
    ("grid", "optimizer", [], "grid.optimizer"),
    ("grid", "optimizer", [1], "grid.optimizer"),
    ("grid", "optimizer", "Adam", "grid.optimizer"),
    ("train", "target", 3, "train.target"),
    ("train", "target", "", "train.target"),
    ("train", "loss", None, "train.loss"),
    ("train", "gramian", "", "train.gramian"),
    ("train", "horizon", -1.0, "train.horizon"),
    ("train", "horizon", "10", "train.horizon"),
    ("train", "loss_dt", 0.0, "train.loss_dt"),
    ("train", "batch", 0, "train.batch"),
    ("train", "batch", 2.0, "train.batch"),
    ("train", "sample_steps", 0, "train.sample_steps"),
    ("train", "burn_in", -1, "train.burn_in"),
    ("train", "dt", 0.0, "train.dt"),
    ("train", "dt", "0.01", "train.dt"),
    ("train", "dt", float("nan"), "train.dt"),
    ("train", "solver", "RK4", "train.solver"),
    ("train", "steps", -5, "train.steps"),
    ("train", "steps", 10**9, "train.steps"),
    ("train", "steps", "100", "train.steps"),
    ("train", "n_log", 0, "train.n_log"),
    ("train", "n_log", 12, "train.n_log"),
    ("train", "n_log", 2.0, "train.n_log"),
    ("train", "log_spacing", "exp", "train.log_spacing"),
    ("train", "dtype", "double", "train.dtype"),
    ("train", "trainable", "W", "train.trainable"),
    ("train", "trainable", [], "train.trainable"),
    ("train", "trainable", ["W", "W"], "train.trainable"),
    ("train", "scaling", "ntk", "train.scaling"),
    ("train", "rescale_v", 1, "train.rescale_v"),
    ("train", "common_init", "no", "train.common_init"),
    ("train", "spectra_at", 0.5, "train.spectra_at"),
    ("train", "spectra_at", [-1.0], "train.spectra_at"),
    ("train", "allow_unstable", "true", "train.allow_unstable"),
    ("train", "curvature_checks", -1, "train.curvature_checks"),
    ("train", "curvature_checks", 2.0, "train.curvature_checks"),
    ("train", "epochs", 3, "train.epochs"),
    ("theory", "overlay", True, "theory.overlay"),
    ("theory", "rtol", 0.0, "theory.rtol"),
    ("theory", "rtol", 0.5, "theory.rtol"),
    ("theory", "atol", -1.0, "theory.atol"),
    ("theory", "atol", "1e-8", "theory.atol"),
    ("theory", "depth", 7, "theory.depth"),
    ("run", "chunk_size", 1.5, "run.chunk_size"),
    ("run", "chunk_size", "auto", "run.chunk_size"),
    ("run", "memory_gb", -1, "run.memory_gb"),
    ("run", "memory_gb", 1e9, "run.memory_gb"),
    ("run", "devices", -1, "run.devices"),
    ("run", "flops", -1.0, "run.flops"),
    ("run", "max_hours", 0.0, "run.max_hours"),
    ("run", "max_hours", "1h", "run.max_hours"),
    ("run", "max_store_gb", -1.0, "run.max_store_gb"),
    ("run", "threads", 4, "run.threads"),
    ("output", "store", 3, "output.store"),
    ("output", "store", "{other}.zarr", "output.store"),
    ("output", "store", "", "output.store"),
    ("output", "figures", "{0}", "output.figures"),
    ("output", "plots", "phase", "output.plots"),
    ("output", "plots", ["heatmap"], "output.plots"),
    ("output", "formats", "png", "output.formats"),
    ("output", "phase", [["sigma"]], "output.phase"),
    ("output", "phase", [["sigma", "seed"]], "output.phase"),
    ("output", "phase", [["optimizer", "c"]], "output.phase"),
    ("output", "dpi", 300, "output.dpi"),
]
TOP = [
    ("name", "", "name"),
    ("name", 5, "name"),
    ("name", "a/b", "name"),
    ("name", "x" * 0, "name"),
    ("description", 3, "description"),
    ("grid", [1], "grid"),
    ("train", "exact", "train"),
    ("runs", {}, "runs"),
    ("theory", 1, "theory"),
    ("output", [], "output"),
]
CROSS = [
    ({"train": {"target": "integrator"}, "grid": {"w": [0.0, 1.0]}}, "grid.w"),
    ({"grid": {"optimizer": ["flow", "gd"]}}, "grid.optimizer"),
    ({"train": {"scaling": "standard"}, "theory": {"overlay": "auto"}}, "theory.overlay"),
    ({"theory": {"overlay": "sigma0"}, "grid": {"sigma": [0.1]}}, "theory.overlay"),
    ({"train": {"loss": "sampled", "sample_steps": 5, "burn_in": 5}}, "train.burn_in"),
    ({"train": {"gramian": "low_rank", "target": "oscillator"}, "grid": {"w": [1.0]}}, "train.gramian"),
    ({"train": {"spectra_at": [5.0]}}, "train.spectra_at"),
    ({"train": {"dt": 0.05}, "grid": {"c": [0.05]}}, "train.dt"),
    ({"train": {"loss": "exact"}, "grid": {"c": [0.0]}}, "grid.c"),
    (
        {"grid": {"N": [4], "seed": {"count": 100000}}, "train": {"steps": 10}, "run": {"memory_gb": 1e-4}},
        None,
    ),  # budget: at run time
]


def _merge(base, patch):
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in patch.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _one_line(raw, must):
    with pytest.raises(ConfigError) as e:
        spec_from_dict(raw)
    lines = [str(i) for i in e.value.issues]
    assert lines and all("\n" not in l and l.startswith("config error: ") for l in lines), lines
    assert any(must in l for l in lines), lines


@pytest.mark.parametrize(
    "sec,key,value,must", FIELDS, ids=[f"{s}.{k}-{i}" for i, (s, k, _, _) in enumerate(FIELDS)]
)
def test_bad_field(sec, key, value, must):
    _one_line(_merge(GOOD, {sec: {key: value}}), must)


@pytest.mark.parametrize("key,value,must", TOP, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(TOP)])
def test_bad_top_level(key, value, must):
    _one_line({**GOOD, key: value}, must)


@pytest.mark.parametrize("patch,must", CROSS, ids=[str(i) for i in range(len(CROSS))])
def test_bad_combination(patch, must, tmp_path):
    raw = _merge(GOOD, patch)
    if must is not None:
        _one_line(raw, must)
        return
    from jaxrnn.sweep import run_sweep

    with pytest.raises(
        ConfigError, match="run.memory_gb"
    ):  # the budget: refused before anything runs or is written
        run_sweep(spec_from_dict(raw), tmp_path / "s.zarr", quiet=True)
    assert not (tmp_path / "s.zarr").exists()


# ----------------------------------------------------------------------------- command line

CFG = """
name = "cli"
[grid]
N = [4]
sigma = [0.0]
c = [0.5]
[train]
dt = 0.02
steps = 10
n_log = 3
[theory]
overlay = "none"
"""


@pytest.fixture
def cfg(tmp_path):
    p = tmp_path / "cli.toml"
    p.write_text(CFG)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("keep")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty.toml").write_text("# nothing here\n")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "array.toml").write_text("grid = 3\n")
    return tmp_path


CLI = [
    (["run", "{d}/cli.toml", "--chunk-size", "-1"], "--chunk-size"),
    (["run", "{d}/cli.toml", "--chunk-size", "0"], "--chunk-size"),
    (["explain", "{d}/cli.toml", "--chunk-size", "0"], "--chunk-size"),
    (["run", "{d}/cli.toml", "--devices", "-2"], "--devices"),
    (["run", "{d}/cli.toml", "--devices", "99"], "--devices"),
    (["run", "{d}/cli.toml", "--num-processes", "0"], "--num-processes"),
    (["run", "{d}/cli.toml", "--process-id", "3", "--num-processes", "2"], "--process-id"),
    (["run", "{d}/cli.toml", "--process-id", "-1"], "--process-id"),
    (["run", "{d}/cli.toml", "--process-id", "1", "--num-processes", "2"], "--coordinator"),
    (["run", "{d}/cli.toml", "--num-processes", "2"], "--coordinator"),
    (["run", "{d}/cli.toml", "--coordinator", "nohostport"], "--coordinator"),
    (["run", "{d}/cli.toml", "--coordinator", "host:99999"], "--coordinator"),
    (["run", "{d}/cli.toml", "--coordinator", ":1234"], "--coordinator"),
    (["run", "{d}/cli.toml", "--out", "{d}/afile"], "is a file"),
    (["run", "{d}/cli.toml", "output.store={d}/notes"], "not a jaxrnn store"),
    (["run", "{d}/cli.toml", "output.store={d}/notes", "--fresh"], "not a jaxrnn store"),
    (["run", "{d}/cli.toml", "output.store={d}/afile"], "not a folder"),
    (["run", "{d}/cli.toml", "output.figures={d}/afile"], "not a folder"),
    (["run", "{d}/empty.toml"], "is empty"),
    (["run", "{d}/binary.toml"], "config"),
    (["run", "{d}/array.toml"], "grid"),
    (["run", "{d}/missing.toml"], "file not found"),
    (["run", "{d}"], "file not found"),
    (["run", "{d}/cli.toml", "grid.N"], "section.key=value"),
    (["run", "{d}/cli.toml", "grid.N=[0]"], "grid.N"),
    (["run", "{d}/cli.toml", "train.steps.x=3"], "train.steps"),
    (["run", "{d}/cli.toml", "nosection=3"], "nosection"),
    (["run", "{d}/cli.toml", "run.max_hours=1e-9"], "run.max_hours"),
    (["run", "{d}/cli.toml", "--bogus"], "unrecognized"),
    (["explain", "{d}/cli.toml", "grid.sigma=[1.5]"], "grid.sigma"),
    (["theory", "{d}/cli.toml", "--out", "{d}/afile"], "is a file"),
    (["theory", "{d}/cli.toml", 'train.loss="sampled"'], "train.loss"),
    (["theory", "{d}/cli.toml", "theory.depth=9"], "theory.depth"),
    (["theory", "{d}/cli.toml", "--chunk-size", "3"], "unrecognized"),
    (["info", "{d}/notes"], "not a jaxrnn store"),
    (["info", "{d}/afile"], "not a jaxrnn store"),
    (["info", "{d}/nothing.zarr"], "does not exist"),
    (["info", "--verify"], "--verify"),
    (["plot", "{d}/notes"], "not a jaxrnn store"),
    (["plot", "{d}/nothing.zarr"], "does not exist"),
    (["compare", "{d}/notes"], "not a jaxrnn store"),
    (["compare", "{d}/nothing.zarr", "--per-seed", "-1"], "--per-seed"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize(
    "argv,must", CLI, ids=[f"{i}-{a[0] if a else 'none'}" for i, (a, _) in enumerate(CLI)]
)
def test_cli_bad_input_one_line_exit_2(cfg, capsys, argv, must):
    argv = [a.replace("{d}", str(cfg)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    err = capsys.readouterr().err
    lines = [
        l for l in err.splitlines() if l.strip() and not l.startswith("usage:") and not l.startswith("  ")
    ]
    assert rc == 2, err
    assert len(lines) == 1 and must in lines[0], err
    assert "Traceback" not in err
    assert (cfg / "notes" / "keep.txt").read_text() == "keep" and (cfg / "afile").read_text() == "x"
    assert not (cfg / "notes" / "cli.zarr").exists() and not list(cfg.glob("**/*.jaxrnn-store"))


# ----------------------------------------------------------------------------- Python API


def test_run_sweep_arguments_named(tmp_path):
    import jax

    from jaxrnn.sweep import run_sweep

    spec = spec_from_dict(GOOD)
    with pytest.raises(ValueError, match="chunk_size"):
        run_sweep(spec, tmp_path / "a.zarr", chunk_size=0, quiet=True)
    with pytest.raises(ValueError, match="process_index"):
        run_sweep(spec, tmp_path / "a.zarr", process_index=2, process_count=2, quiet=True)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            run_sweep(spec, tmp_path / "a.zarr", quiet=True)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert not (tmp_path / "a.zarr").exists()


def test_import_has_no_side_effects():
    """`import jaxrnn` loads neither JAX nor numpy and leaves the environment alone (issue: no
    environment mutation at import); the public names load on first use."""
    import subprocess
    import sys

    code = (
        "import os, sys; before = dict(os.environ); import jaxrnn; "
        "assert dict(os.environ) == before; assert 'jax' not in sys.modules and 'numpy' not in sys.modules; "
        "jaxrnn.leaky_integrator; assert 'jax' in sys.modules; print('ok')"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_NUM_THREADS"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_lazy_names_survive_submodule_imports():
    """`jaxrnn.train` stays the function after the `jaxrnn.train` module is imported (by jaxrnn itself,
    by `from jaxrnn.train import ...`, or by touching another name it defines)."""
    import subprocess
    import sys

    code = (
        "import jaxrnn; jaxrnn.ExactLoss(); assert callable(jaxrnn.train), jaxrnn.train; "
        "from jaxrnn.train import TrainResult; import jaxrnn.sweep; assert callable(jaxrnn.train); print('ok')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
