"""Sweep config validation: every bad value exits 2 with one line naming field, value and range."""

import subprocess
import sys

import pytest

from jaxrnn.cli import main
from jaxrnn.sweep import ConfigError, load_spec, plan_sweep, spec_from_dict

GOOD = """
name = "t"
[grid]
N = [4, 8]
sigma = {linspace = [0.0, 0.5, 3]}
c = [0.5]
seed = {count = 2}
[train]
dt = 0.01
steps = 20
n_log = 5
"""

# (section edits as TOML text appended / replaced, field named in the message)
BAD = [
    ("grid.sigma", "sigma = [-0.1]"),
    ("grid.sigma", "sigma = [1.5]"),
    ("grid.sigma", 'sigma = ["a"]'),
    ("grid.N", "N = [1]"),
    ("grid.N", "N = [4.5]"),
    ("grid.N", "N = [100000]"),
    ("grid.c", "c = [0.0]"),
    ("grid.c", "c = [-1.0]"),
    ("grid.eta", "eta = [0.0]"),
    ("grid.w", "w = [0.5]"),
    ("grid.seed", "seed = [-1]"),
    ("grid.seed", "seed = {count = 0}"),
    ("grid.sigma", "sigma = {linspace = [0, 1]}"),
    ("grid.sigma", "sigma = {arange = [0, 1, 2]}"),
    ("grid.sigma", "sigma = []"),
    ("grid.sigma", "sigma = [0.1, 0.1]"),
    ("grid.optimizer", 'optimizer = ["lbfgs"]'),
    ("grid.optimizer", 'optimizer = ["flow", "adam"]'),
    ("grid.bogus", "bogus = [1]"),
    ("train.loss", '[train]\nloss = "mse"'),
    ("train.dtype", '[train]\ndtype = "float16"'),
    ("train.steps", "[train]\nsteps = 0"),
    ("train.steps", "[train]\nsteps = 2.5"),
    ("train.dt", "[train]\ndt = -1.0"),
    ("train.dt", "[train]\ndt = 2.0"),
    ("train.solver", '[train]\nsolver = "rk45"'),
    ("train.solver", '[train]\nsolver = "stiff"\nloss = "sampled"'),
    ("train.rtol", '[train]\nsolver = "stiff"\nrtol = 1.0'),
    ("train.rtol", "[train]\nrtol = 0"),
    ("train.horizon", '[train]\nloss = "finite_horizon"'),
    ("train.n_log", "[train]\nn_log = 1"),
    ("train.trainable", '[train]\ntrainable = ["W", "x"]'),
    ("train.target", '[train]\ntarget = "chaos"'),
    ("train.spectra_at", "[train]\nspectra_at = [1000.0]"),
    ("train.loss_dt", '[train]\nloss = "discrete"\nloss_dt = 2.0'),
    ("train.rescale_v", '[train]\nrescale_v = "yes"'),
    ("train.gramian", '[train]\ngramian = "adi"'),
    ("train.gramian", '[train]\ngramian = "low_rank"\nloss = "discrete"'),
    ("run.chunk_size", "[run]\nchunk_size = -3"),
    ("run.memory_gb", "[run]\nmemory_gb = 0"),
    ("output.formats", '[output]\nformats = ["gif"]'),
    ("output.phase", '[output]\nphase = [["sigma", "sigma"]]'),
    ("theory.overlay", '[theory]\noverlay = "magic"'),
    ("name", 'name = "a b/c"'),
    ("unknown", "[unknown]\nx = 1"),
]


def _write(tmp_path, extra):
    """GOOD with `extra` merged: grid-level lines replace GOOD's line of the same key."""
    lines = GOOD.strip().splitlines()
    if extra.startswith("[") or extra.startswith("name"):
        if extra.startswith("name"):
            lines = [l for l in lines if not l.startswith("name")]
            text = extra + "\n" + "\n".join(lines)
        else:
            sec = extra.splitlines()[0]
            if sec in lines:
                i = lines.index(sec)
                text = "\n".join(lines[: i + 1] + extra.splitlines()[1:] + lines[i + 1 :])
                # later duplicate keys override: drop GOOD's copies of the keys we set
                keys = {l.split("=")[0].strip() for l in extra.splitlines()[1:]}
                out, cur = [], None
                for l in text.splitlines():
                    if l.startswith("["):
                        cur = l
                    k = l.split("=")[0].strip()
                    if cur == sec and k in keys and l not in extra.splitlines():
                        continue
                    out.append(l)
                text = "\n".join(out)
            else:
                text = "\n".join(lines) + "\n" + extra
    else:
        key = extra.split("=")[0].strip()
        i = lines.index("[grid]")
        lines = [
            l
            for l in lines
            if not (
                l.split("=")[0].strip() == key
                and lines.index(l) > i
                and lines.index(l) < lines.index("[train]")
            )
        ]
        lines.insert(lines.index("[grid]") + 1, extra)
        text = "\n".join(lines)
    p = tmp_path / "cfg.toml"
    p.write_text(text + "\n")
    return p


def test_good_config_loads(tmp_path):
    spec = load_spec(_write(tmp_path, "# nothing"))
    assert spec.grid.sigma == (0.0, 0.25, 0.5)
    assert spec.grid.n_networks == 2 * 3 * 2
    plan = plan_sweep(spec, chunk_size=4, n_devices=1)
    assert len(plan.groups) == 2
    assert sum(len(c.cells) for c in plan.chunks) == spec.grid.n_cells


@pytest.mark.parametrize("field,extra", BAD, ids=[f"{i}-{f}" for i, (f, _) in enumerate(BAD)])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, field, extra):
    cfg = _write(tmp_path, extra)
    rc = main(["explain", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith("config error: ") and field in err[0], err
    assert "Traceback" not in err[0]


def test_bad_override_and_missing_file(tmp_path, capsys):
    cfg = _write(tmp_path, "# ok")
    assert main(["explain", str(cfg), "grid.sigma=[2.0]"]) == 2
    assert "grid.sigma" in capsys.readouterr().err
    assert main(["explain", str(cfg), "train.nonsense=3"]) == 2
    assert "train.nonsense" in capsys.readouterr().err
    assert main(["explain", str(cfg), "noequals"]) == 2
    assert main(["explain", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\nN = ")
    assert main(["explain", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_overrides_apply_and_change_hash(tmp_path):
    cfg = _write(tmp_path, "# ok")
    a = load_spec(cfg)
    b = load_spec(cfg, ["train.steps=40", "grid.N=[4]"])
    assert b.train.steps == 40 and b.grid.N == (4,)
    assert a.config_hash != b.config_hash
    c = load_spec(cfg, ["run.chunk_size=5"])  # run settings do not change the results
    assert c.config_hash == a.config_hash


def test_several_errors_one_line_each():
    with pytest.raises(ConfigError) as e:
        spec_from_dict({"grid": {"sigma": [-1], "N": [0]}, "train": {"loss": "x"}})
    assert len(e.value.issues) == 3


def test_explain_prints_summary(tmp_path, capsys):
    cfg = _write(tmp_path, "# ok")
    assert main(["explain", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "12 networks" in out and "groups (one compile each): 2" in out and "estimated run time" in out


def test_cli_bad_config_subprocess_no_traceback(tmp_path):
    cfg = _write(tmp_path, "sigma = [-0.1]")
    p = subprocess.run(
        [sys.executable, "-m", "jaxrnn.cli", "run", str(cfg)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert [l for l in p.stderr.splitlines() if l.strip()] == [
        "config error: grid.sigma = -0.1: must be numbers in [0.0, 1.0)"
    ]


def test_gramian_reaches_the_loss():
    from jaxrnn.sweep._runner import make_loss

    spec = spec_from_dict(
        {
            "grid": {"N": [4], "sigma": [0.1], "c": [0.5]},
            "train": {"gramian": "low_rank", "steps": 10, "n_log": 5},
        }
    )
    assert make_loss(spec).gramian == "low_rank"
    assert make_loss(spec_from_dict({"grid": {"N": [4], "sigma": [0.1], "c": [0.5]}})).gramian == "dense"


def test_curvature_checks_reach_the_flow():
    from jaxrnn.sweep._runner import make_method

    raw = {"grid": {"N": [4], "sigma": [0.1], "c": [0.5]}, "train": {"steps": 10, "n_log": 5}}
    assert make_method(spec_from_dict(raw), "flow").checks == 8  # on by default
    off = spec_from_dict({**raw, "train": {**raw["train"], "curvature_checks": 0}})
    assert make_method(off, "flow").checks == 0 and make_method(off, "flow").curvature_checks(5) == (set(), 0)
    assert off.config_hash != spec_from_dict(raw).config_hash  # the check decides a run's status


def test_stiff_solver_reaches_the_flow_and_lifts_the_step_bound():
    """solver = "stiff" runs StiffFlow (its rtol from the config): dt is only the log unit, so a dt that
    fixed-step RK4 could not resolve at the smallest c (here bound 2.4e-4 at c = 0.03) is accepted, and the
    refusal for RK4 names the way out."""
    from jaxrnn.methods import StiffFlow
    from jaxrnn.sweep._runner import make_method

    raw = {
        "grid": {"N": [4], "sigma": [0.1], "c": [0.03, 0.1]},
        "train": {"dt": 0.05, "steps": 24, "n_log": 25},
    }
    with pytest.raises(ConfigError, match='train.dt.*use train.solver = "stiff"'):
        spec_from_dict(raw)
    spec = spec_from_dict({**raw, "train": {**raw["train"], "solver": "stiff", "rtol": 2e-6}})
    method = make_method(spec, "flow")
    assert isinstance(method, StiffFlow) and method.rtol == 2e-6 and method.dt == 0.05
