"""Property-based tests (hypothesis): valid configs round-trip, invalid ones are refused with one line
per bad field, and a sweep interrupted at a random point resumes to exactly the uninterrupted result."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from jaxrnn.sweep import ConfigError, spec_from_dict
from jaxrnn.sweep._spec import OPTIMIZERS, PLOT_FORMATS, PLOT_KINDS, spec_from_json

pos = st.floats(min_value=1e-3, max_value=0.9, allow_nan=False)


def _distinct(elem, lo=1, hi=4):
    return st.lists(elem, min_size=lo, max_size=hi, unique=True)


@st.composite
def valid_raw(draw):
    target = draw(st.sampled_from(["integrator", "oscillator"]))
    loss = draw(st.sampled_from(["exact", "finite_horizon", "discrete", "sampled"]))
    flow = draw(st.booleans())
    steps = draw(st.integers(1, 10_000))
    train = {
        "target": target,
        "loss": loss,
        "steps": steps,
        "n_log": draw(st.integers(2, steps + 1)),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "solver": draw(st.sampled_from(["rk4", "euler"])),
        "dt": draw(st.floats(1e-5, 1e-3)),
        "allow_unstable": True,
        "curvature_checks": draw(st.integers(0, 100_000)),
        "trainable": draw(st.lists(st.sampled_from(["W", "u", "v"]), min_size=1, max_size=3, unique=True)),
        "log_spacing": draw(st.sampled_from(["linear", "log"])),
    }
    if loss == "finite_horizon":
        train["horizon"] = draw(st.floats(0.1, 100.0))
    if loss == "sampled":
        train["sample_steps"] = draw(st.integers(2, 500))
        train["burn_in"] = draw(st.integers(0, train["sample_steps"] - 1))
        train["batch"] = draw(st.integers(1, 64))
    grid = {
        "N": draw(_distinct(st.integers(2, 512))),
        "sigma": draw(_distinct(st.floats(0.0, 0.95))),
        "c": draw(_distinct(st.floats(0.01, 2.0))),
        "eta": draw(_distinct(st.floats(0.01, 10.0))),
        "seed": draw(_distinct(st.integers(0, 2**31 - 1))),
        "optimizer": ["flow"]
        if flow
        else draw(_distinct(st.sampled_from([o for o in OPTIMIZERS if o != "flow"]))),
    }
    if target == "oscillator":
        grid["w"] = draw(_distinct(st.floats(0.0, 10.0)))
    overlay = (
        "none"
        if train.get("scaling", "mean_field") != "mean_field"
        else draw(st.sampled_from(["none", "auto"]))
    )
    return {
        "name": draw(st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)),
        "grid": grid,
        "train": train,
        "theory": {"overlay": overlay},
        "output": {
            "plots": draw(st.lists(st.sampled_from(PLOT_KINDS), unique=True)),
            "formats": draw(_distinct(st.sampled_from(PLOT_FORMATS), 1, 2)),
        },
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_raw())
def test_valid_configs_round_trip(raw):
    spec = spec_from_dict(raw)
    again = spec_from_dict(spec.to_raw())
    assert again == spec and again.config_hash == spec.config_hash
    assert spec_from_json(spec.to_json()) == spec  # as a store keeps it
    assert spec.grid.n_networks == np.prod(
        [len(spec.grid.axis(a)) for a in ("N", "sigma", "c", "w", "eta", "optimizer")]
    ) * len(spec.grid.seed)


# (field, strategy of values that are out of range or of the wrong type for it)
bad_value = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.just([]), st.just({"x": 1}))
BAD_FIELDS = {
    ("grid", "N"): st.one_of(
        bad_value, st.integers(max_value=1), st.integers(min_value=8193), st.floats(2.5, 3.5)
    ),
    ("grid", "sigma"): st.one_of(
        bad_value, st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.just(float("nan"))
    ),
    ("grid", "c"): st.one_of(
        bad_value, st.floats(max_value=0.0), st.floats(min_value=100.01, allow_infinity=False)
    ),
    ("grid", "eta"): st.one_of(bad_value, st.floats(max_value=0.0), st.just(float("inf"))),
    ("grid", "seed"): st.one_of(bad_value, st.integers(max_value=-1), st.integers(min_value=2**31)),
    ("grid", "optimizer"): st.one_of(
        st.text(min_size=1, max_size=5).filter(lambda s: s not in OPTIMIZERS), st.just(["flow", "flow"])
    ),
    ("train", "steps"): st.one_of(bad_value, st.integers(max_value=0), st.floats(1.5, 2.5)),
    ("train", "dt"): st.one_of(
        bad_value, st.floats(max_value=0.0), st.floats(min_value=10.01, allow_infinity=False)
    ),
    ("train", "loss"): st.text(max_size=6).filter(
        lambda s: s not in ("exact", "finite_horizon", "discrete", "sampled")
    ),
    ("train", "dtype"): st.sampled_from(["float16", "int32", "", "f64"]),
    ("train", "n_log"): st.one_of(bad_value, st.integers(max_value=1)),
    ("train", "solver"): st.text(max_size=5).filter(lambda s: s not in ("rk4", "euler", "stiff")),
    ("train", "rtol"): st.one_of(bad_value, st.floats(max_value=0.0), st.floats(min_value=1.0)),
    ("train", "curvature_checks"): st.one_of(
        bad_value, st.integers(max_value=-1), st.integers(min_value=100_001), st.floats(0.5, 1.5)
    ),
    ("theory", "rtol"): st.one_of(
        bad_value, st.floats(max_value=0.0), st.floats(min_value=0.011, max_value=1e9)
    ),
    ("run", "memory_gb"): st.one_of(bad_value, st.floats(max_value=0.0)),
    ("run", "chunk_size"): st.one_of(bad_value, st.integers(max_value=-1)),
    ("output", "formats"): st.one_of(
        st.just([]), st.lists(st.sampled_from(["gif", "jpg", "tiff"]), min_size=1)
    ),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_raw(), st.sampled_from(sorted(BAD_FIELDS)), st.data())
def test_invalid_configs_refused_with_one_line_naming_the_field(raw, field, data):
    sec, key = field
    value = data.draw(BAD_FIELDS[field])
    raw[sec] = {**raw.get(sec, {}), key: value}
    with pytest.raises(ConfigError) as e:
        spec_from_dict(raw)
    lines = [str(i) for i in e.value.issues]
    assert all("\n" not in line and line.startswith("config error: ") for line in lines)
    assert any(f"{sec}.{key}" in line for line in lines), lines


# ----------------------------------------------------------------------------- interrupted runs

KILL_RAW = {
    "name": "kill",
    "grid": {"N": [4], "sigma": [0.0, 0.3], "c": [0.5, 0.8], "eta": [1.0, 2.0], "seed": {"count": 2}},
    "train": {"dt": 0.02, "steps": 12, "n_log": 4, "curvature_checks": 0},  # test_sweep_run's programs
    "theory": {"overlay": "none"},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from jaxrnn.sweep import open_dataset, run_sweep

    spec = spec_from_dict(KILL_RAW)
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    ds = open_dataset(path).load()
    return spec, {k: ds[k].values for k in ds.data_vars}


class _Killed(BaseException):
    """Stands for SIGKILL/Ctrl-C: not an Exception, so nothing on the way may swallow it."""


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kill_at=st.integers(0, 7), partial_vars=st.integers(0, 20), second_kill=st.integers(-1, 7))
@example(kill_at=1, partial_vars=0, second_kill=7)  # a second kill point past the resume's last write
def test_random_kill_points_resume_to_the_uninterrupted_result(
    tmp_path_factory, reference, kill_at, partial_vars, second_kill
):
    """Kill inside the k-th cell write, after writing some of its variables (data without checksum or
    `done`), possibly twice; then resume. The store must equal the uninterrupted run exactly."""
    import jaxrnn.sweep._runner as runner
    import jaxrnn.sweep._store as store
    from jaxrnn.sweep import open_dataset, run_sweep

    spec, ref = reference
    path = tmp_path_factory.mktemp("kill") / "k.zarr"
    real = store.write_cells

    def killing(at):
        calls = {"n": 0}

        def write(g, spec_, cells, data):
            if calls["n"] == at:
                names = store.cell_variables(g)[:partial_vars]
                idx = np.unravel_index(int(cells[0]), spec_.grid.shape)
                for name in names:  # a torn write: some variables of the first cell, nothing else
                    g[name][tuple(int(i) for i in idx)] = np.asarray(data[name][0]).astype(g[name].dtype)
                raise _Killed
            calls["n"] += 1
            real(g, spec_, cells, data)

        return write, calls

    for attempt, at in enumerate((kill_at, second_kill)):
        if at < 0:
            continue
        runner.write_cells, calls = killing(at)
        try:
            run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
            killed = False
        except _Killed:
            killed = True
        finally:
            runner.write_cells = real
        if not killed:
            # the first run has 8 writes, so its kill always comes; a resume has only the writes left, and a
            # kill point beyond them is never reached: then the run must simply have completed
            assert attempt == 1 and calls["n"] <= at, (attempt, calls["n"], at)
            break
    run_sweep(spec, path, chunk_size=2, n_devices=1, quiet=True)
    ds = open_dataset(path).load()
    got = {k: ds[k].values for k in ds.data_vars}
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
