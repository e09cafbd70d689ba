"""Sweep configuration: TOML (plus `key=value` overrides) -> a validated, frozen `SweepSpec`.

Everything is checked before anything compiles. Each bad value becomes one `ConfigIssue` line that
names the field, the value and what is allowed; `load_spec` raises `ConfigError` carrying all of them.
The schema is documented in docs/sweep.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AXES",
    "OPTIMIZERS",
    "LOSSES",
    "ConfigError",
    "ConfigIssue",
    "SweepSpec",
    "GridSpec",
    "TrainSpec",
    "TheorySpec",
    "RunSpec",
    "OutputSpec",
    "load_spec",
    "spec_from_dict",
    "spec_from_json",
    "parse_override",
]

from ..stability import STEP_LIMITS, learned_curvature
from ..variables import GRID_AXES

# grid axes in store order (seed is the last grid-like dimension, then log time)
AXES = GRID_AXES
OPTIMIZERS = ("flow", "gd", "adam", "sgd_momentum", "rmsprop")
LOSSES = ("exact", "finite_horizon", "discrete", "sampled")
THEORIES = ("none", "auto", "sigma0")
PLOT_KINDS = ("phase", "curves", "outlier", "spectra", "loss")
PLOT_FORMATS = ("png", "pdf", "svg")
# gradient-flow solvers: fixed-step RK4 / Euler (GradientFlow), adaptive linearly implicit (StiffFlow)
SOLVERS = ("rk4", "euler", "stiff")
MAX_N = 8192


@dataclasses.dataclass(frozen=True)
class ConfigIssue:
    field: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        val = json.dumps(self.value) if _jsonable(self.value) else repr(self.value)
        return f"config error: {self.field} = {val}: {self.allowed}"


class ConfigError(ValueError):
    """One or more invalid config values; `issues` holds one `ConfigIssue` per bad value."""

    def __init__(self, issues):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _jsonable(v):
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- frozen spec


@dataclasses.dataclass(frozen=True)
class GridSpec:
    N: tuple[int, ...] = (16,)
    sigma: tuple[float, ...] = (0.0,)
    c: tuple[float, ...] = (0.1,)
    w: tuple[float, ...] = (0.0,)
    eta: tuple[float, ...] = (1.0,)
    optimizer: tuple[str, ...] = ("flow",)
    seed: tuple[int, ...] = (0,)

    def axis(self, name):
        return getattr(self, name)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.axis(a)) for a in AXES)

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_networks(self) -> int:
        return self.n_cells * len(self.seed)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    target: str = "integrator"
    loss: str = "exact"
    gramian: str = "dense"  # exact: "dense" (Smith doubling) or "low_rank" (ADI; integrator, large N)
    horizon: float | None = None  # finite_horizon
    loss_dt: float = 0.1  # discrete / sampled
    batch: int = 32  # sampled
    sample_steps: int = 200  # sampled
    burn_in: int = 0  # sampled
    dt: float = 0.01  # gradient-flow step (flow time)
    solver: str = (
        "rk4"  # flow: "rk4" | "euler" (fixed step dt) | "stiff" (StiffFlow: adaptive, dt = log unit)
    )
    rtol: float = 1e-7  # solver = "stiff": relative tolerance of StiffFlow's step control
    curvature_checks: int = 8  # flow: log points with a Lanczos edge-of-stability check; 0 = off
    steps: int = 1000
    n_log: int = 101
    log_spacing: str = "linear"
    dtype: str = "float64"
    trainable: tuple[str, ...] = ("W", "u", "v")
    scaling: str = "mean_field"
    rescale_v: bool = False
    common_init: bool = False
    spectra_at: tuple[float, ...] = ()  # flow times at which full spectra are stored
    allow_unstable: bool = False

    @property
    def time_per_step(self) -> float:
        return self.dt  # only meaningful for flow; see SweepSpec.time_per_step


@dataclasses.dataclass(frozen=True)
class TheorySpec:
    overlay: str = "auto"
    rtol: float = 1e-8
    atol: float = 1e-10
    depth: int = 2  # Fock-space depth of the N -> inf theory at sigma > 0 (`jaxrnn theory`)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    chunk_size: int = 0  # networks per chunk; 0 = from the memory budget
    memory_gb: float = 2.0
    devices: int = 0  # 0 = all local devices
    flops: float = 0.0  # sustained flop/s for the time estimate; 0 = measure this machine
    max_hours: float = 24.0  # refuse a sweep estimated to run longer (raise it to allow)
    max_store_gb: float = 100.0  # refuse a sweep whose store would be larger (raise it to allow)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    store: str = "results/{name}.zarr"
    figures: str = "results/{name}"
    plots: tuple[str, ...] = ("phase",)
    formats: tuple[str, ...] = ("png",)
    phase: tuple[tuple[str, str], ...] = ()  # axis pairs (x, y); () = every pair of axes with > 1 value


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    grid: GridSpec
    train: TrainSpec
    theory: TheorySpec
    run: RunSpec
    output: OutputSpec
    source: str = ""

    # -- derived quantities
    @property
    def is_flow(self) -> bool:
        return all(o == "flow" for o in self.grid.optimizer)

    @property
    def time_per_step(self) -> float:
        return self.train.dt if self.is_flow else 1.0

    @property
    def has_theory(self) -> bool:
        """Whether the reduced theories apply: exact loss, gradient flow, mean-field rates, overlay on."""
        t = self.train
        return (
            self.theory.overlay != "none" and t.loss == "exact" and self.is_flow and t.scaling == "mean_field"
        )

    @property
    def t_end(self) -> float:
        return self.train.steps * self.time_per_step

    def log_steps(self) -> np.ndarray:
        steps, n = self.train.steps, self.train.n_log
        if self.train.log_spacing == "log":
            ls = np.unique(np.round(np.geomspace(1, steps, n - 1)).astype(np.int64))
            return np.concatenate([[0], ls])
        return np.unique(np.round(np.linspace(0, steps, n)).astype(np.int64))

    def log_times(self) -> np.ndarray:
        return self.log_steps() * self.time_per_step

    def spectra_indices(self) -> np.ndarray:
        """Indices of the log points nearest to `train.spectra_at`."""
        t = self.log_times()
        return np.array(
            sorted({int(np.argmin(np.abs(t - s))) for s in self.train.spectra_at}), dtype=np.int64
        )

    def paths(self, out: str | None = None) -> tuple[Path, Path]:
        """(store, figure folder); `out` (a folder) overrides both."""
        if out is not None:
            return Path(out) / f"{self.name}.zarr", Path(out) / self.name
        return Path(self.output.store.format(name=self.name)), Path(
            self.output.figures.format(name=self.name)
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_raw(self) -> dict:
        """The config as TOML-shaped data (lists, no None): `spec_from_dict(spec.to_raw())` gives `spec` back."""

        def plain(v) -> Any:
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items() if x is not None}
            return v

        d = plain(self.to_dict())
        d.pop("source", None)
        return d

    def result_dict(self) -> dict:
        """The parts that determine the stored numbers (grid, training, theory); not run/output."""
        d = self.to_dict()
        return {k: d[k] for k in ("grid", "train", "theory")}

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.result_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)


# ----------------------------------------------------------------------------- parsing


_SECTIONS = {
    "grid": GridSpec,
    "train": TrainSpec,
    "theory": TheorySpec,
    "run": RunSpec,
    "output": OutputSpec,
}
_TOP = ("name", "description")


def spec_from_json(text: str) -> SweepSpec:
    """The spec a store was written with (its `jaxrnn_config` attribute, `SweepSpec.to_json`)."""
    d = json.loads(text)
    source = d.pop("source", "")

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items() if x is not None}
        return [plain(x) for x in v] if isinstance(v, list) else v

    return spec_from_dict(plain(d), source=source)


def parse_override(text: str):
    """`section.key=value` -> (["section", "key"], value); value parsed as a TOML value, else a string."""
    if "=" not in text:
        raise ConfigError(
            [ConfigIssue("override", text, "must look like section.key=value, e.g. train.steps=200")]
        )
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def load_spec(path, overrides=(), *, name: str | None = None) -> SweepSpec:
    """Read a TOML sweep, apply `key=value` overrides, validate. Raises `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([ConfigIssue("config", str(path), "file not found")])
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigIssue("config", str(path), f"is not valid TOML ({e})")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue("config", str(path), "is not UTF-8 text")]) from None
    if not raw and not overrides:
        raise ConfigError(
            [
                ConfigIssue(
                    "config",
                    str(path),
                    "is empty: a sweep needs at least a [grid] table (see sweeps/quickstart.toml)",
                )
            ]
        )
    raw.setdefault("name", name or path.stem)
    for ov in overrides:
        keys, value = parse_override(ov)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError([ConfigIssue(".".join(keys), value, f"{k} is not a section")])
        node[keys[-1]] = value
    return spec_from_dict(raw, source=str(path))


def _expand_axis(field, value, issues, *, integer=False):
    """A number, a list, or {linspace=[a,b,n]} / {logspace=[a,b,n]} (base 10 exponents) / {count=n}."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("linspace", "logspace", "count"):
            issues.append(
                ConfigIssue(
                    field, value, "a range must be one of {linspace=[a,b,n]}, {logspace=[a,b,n]}, {count=n}"
                )
            )
            return None
        kind, args = next(iter(value.items()))
        if kind == "count":
            if isinstance(args, bool) or not isinstance(args, int) or not 1 <= args <= 100_000:
                issues.append(ConfigIssue(field, value, "count must be an integer in [1, 100000]"))
                return None
            return list(range(args))
        if (
            not isinstance(args, list)
            or len(args) != 3
            or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
            or not isinstance(args[2], int)
            or not 1 <= args[2] <= 10_000
        ):
            issues.append(
                ConfigIssue(
                    field, value, f"{kind} needs [start, stop, n] with numbers and an integer n in [1, 10000]"
                )
            )
            return None
        fn = np.linspace if kind == "linspace" else np.logspace
        vals = [float(x) for x in fn(args[0], args[1], args[2])]
        return [int(round(x)) for x in vals] if integer else vals
    vals = value if isinstance(value, list) else [value]
    if not vals:
        issues.append(ConfigIssue(field, value, "must not be empty"))
        return None
    return vals


def _numbers(field, vals, issues, lo, hi, *, lo_open=False, hi_open=False, integer=False):
    out = []
    lo_b, hi_b = ("(" if lo_open else "["), (")" if hi_open else "]")
    kind = "integers" if integer else "numbers"
    allowed = f"must be {kind} in {lo_b}{lo}, {hi}{hi_b}"
    for v in vals:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and integer and not (isinstance(v, int) or float(v).is_integer()):
            ok = False
        if ok:
            x = float(v)
            ok = math.isfinite(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
        if not ok:
            issues.append(ConfigIssue(field, v, allowed))
            return None
        out.append(int(v) if integer else float(v))
    if len(set(out)) != len(out):
        issues.append(ConfigIssue(field, vals, "values must be distinct"))
        return None
    return tuple(out)


def _scalar(section, key, raw, default, issues, check):
    """Read one scalar field; `check(value) -> str|None` returns the allowed-range text when bad."""
    field = f"{section}.{key}"
    value = raw.get(key, default)
    msg = check(value)
    if msg:
        issues.append(ConfigIssue(field, value, msg))
        return default
    return value


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _int_in(lo, hi):
    return lambda v: None if _is_int(v) and lo <= v <= hi else f"must be an integer in [{lo}, {hi}]"


def _num_in(lo, hi, lo_open=True):
    b = "(" if lo_open else "["
    return lambda v: (
        None
        if _is_num(v) and (v > lo if lo_open else v >= lo) and v <= hi
        else f"must be a number in {b}{lo}, {hi}]"
    )


def _one_of(options):
    return lambda v: None if v in options else f"must be one of {', '.join(map(str, options))}"


def _bool(v):
    return None if isinstance(v, bool) else "must be true or false"


def spec_from_dict(raw: dict, *, source: str = "") -> SweepSpec:
    issues: list[ConfigIssue] = []
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("config", raw, "must be a TOML table")])
    for key in raw:
        if key not in _TOP and key not in _SECTIONS:
            issues.append(
                ConfigIssue(key, raw[key], f"unknown key; allowed: {', '.join(_TOP + tuple(_SECTIONS))}")
            )
    name = raw.get("name", "sweep")
    if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        issues.append(
            ConfigIssue("name", name, "must be a non-empty string of letters, digits, '-', '_' or '.'")
        )
        name = "sweep"
    description = raw.get("description", "")
    if not isinstance(description, str):
        issues.append(ConfigIssue("description", description, "must be a string"))
        description = ""
    secs = {}
    for sec, cls in _SECTIONS.items():
        val = raw.get(sec, {})
        if not isinstance(val, dict):
            issues.append(ConfigIssue(sec, val, "must be a table [" + sec + "]"))
            val = {}
        allowed = [f.name for f in dataclasses.fields(cls)]
        for k in val:
            if k not in allowed:
                issues.append(
                    ConfigIssue(f"{sec}.{k}", val[k], f"unknown key; allowed: {', '.join(allowed)}")
                )
        secs[sec] = val

    tr = _train(secs["train"], issues)
    grid = _grid(secs["grid"], tr, issues)
    theory = TheorySpec(
        overlay=_scalar("theory", "overlay", secs["theory"], "auto", issues, _one_of(THEORIES)),
        rtol=_scalar("theory", "rtol", secs["theory"], 1e-8, issues, _num_in(0, 1e-2)),
        atol=_scalar("theory", "atol", secs["theory"], 1e-10, issues, _num_in(0, 1e-2)),
        depth=_scalar("theory", "depth", secs["theory"], 2, issues, _int_in(0, 4)),
    )
    rs = secs["run"]
    run = RunSpec(
        chunk_size=_scalar("run", "chunk_size", rs, 0, issues, _int_in(0, 10_000_000)),
        memory_gb=float(_scalar("run", "memory_gb", rs, 2.0, issues, _num_in(0, 1e5))),
        devices=_scalar("run", "devices", rs, 0, issues, _int_in(0, 100_000)),
        flops=float(_scalar("run", "flops", rs, 0.0, issues, _num_in(0, 1e20, lo_open=False))),
        max_hours=float(_scalar("run", "max_hours", rs, 24.0, issues, _num_in(0, 1e7))),
        max_store_gb=float(_scalar("run", "max_store_gb", rs, 100.0, issues, _num_in(0, 1e7))),
    )
    output = _output(secs["output"], grid, issues)
    if issues:
        raise ConfigError(issues)
    spec = SweepSpec(name, description, grid, tr, theory, run, output, source)
    _cross_checks(spec, issues)
    if issues:
        raise ConfigError(issues)
    return spec


def _train(t, issues) -> TrainSpec:
    d = TrainSpec()
    g = lambda key, check: _scalar("train", key, t, getattr(d, key), issues, check)
    target = g("target", _one_of(("integrator", "oscillator")))
    loss = g("loss", _one_of(LOSSES))
    horizon = t.get("horizon")
    if loss == "finite_horizon" and horizon is None:
        issues.append(
            ConfigIssue(
                "train.horizon", None, 'is required with loss = "finite_horizon": a number in (0, 1e4]'
            )
        )
    elif horizon is not None:
        horizon = g("horizon", _num_in(0, 1e4))
    trainable = t.get("trainable", list(d.trainable))
    if (
        not isinstance(trainable, list)
        or not trainable
        or any(p not in ("W", "u", "v") for p in trainable)
        or len(set(trainable)) != len(trainable)
    ):
        issues.append(
            ConfigIssue(
                "train.trainable", trainable, "must be a non-empty list of distinct names from W, u, v"
            )
        )
        trainable = list(d.trainable)
    spectra_at = t.get("spectra_at", [])
    if not isinstance(spectra_at, list) or not all(_is_num(x) and x >= 0 for x in spectra_at):
        issues.append(ConfigIssue("train.spectra_at", spectra_at, "must be a list of flow times >= 0"))
        spectra_at = []
    steps = g("steps", _int_in(1, 100_000_000))
    return TrainSpec(
        target=target,
        loss=loss,
        gramian=g("gramian", _one_of(("dense", "low_rank"))),
        horizon=None if horizon is None else float(horizon),
        loss_dt=float(g("loss_dt", _num_in(0, 1))),
        batch=g("batch", _int_in(1, 1_000_000)),
        sample_steps=g("sample_steps", _int_in(1, 1_000_000)),
        burn_in=g("burn_in", _int_in(0, 1_000_000)),
        dt=float(g("dt", _num_in(0, 10))),
        solver=g("solver", _one_of(SOLVERS)),
        rtol=float(g("rtol", lambda v: None if _is_num(v) and 0 < v < 1 else "must be a number in (0, 1)")),
        curvature_checks=g("curvature_checks", _int_in(0, 100_000)),
        steps=steps,
        n_log=g("n_log", _int_in(2, 100_000)),
        log_spacing=g("log_spacing", _one_of(("linear", "log"))),
        dtype=g("dtype", _one_of(("float32", "float64"))),
        trainable=tuple(trainable),
        scaling=g("scaling", _one_of(("mean_field", "standard"))),
        rescale_v=g("rescale_v", _bool),
        common_init=g("common_init", _bool),
        spectra_at=tuple(float(x) for x in spectra_at),
        allow_unstable=g("allow_unstable", _bool),
    )


def _grid(gr, tr: TrainSpec, issues) -> GridSpec:
    out = {}
    c_lo_open = tr.loss != "finite_horizon"  # c = 0 (perfect integrator) needs a finite horizon
    checks = {
        "N": dict(lo=2, hi=MAX_N, integer=True),
        "sigma": dict(lo=0.0, hi=1.0, hi_open=True),
        "c": dict(lo=0.0, hi=100.0, lo_open=c_lo_open),
        "w": dict(lo=0.0, hi=1000.0),
        "eta": dict(lo=0.0, hi=1e4, lo_open=True),
        "seed": dict(lo=0, hi=2**31 - 1, integer=True),
    }
    defaults = GridSpec()
    for name, ck in checks.items():
        field = f"grid.{name}"
        if name not in gr:
            out[name] = getattr(defaults, name)
            continue
        vals = _expand_axis(field, gr[name], issues, integer=ck.get("integer", False))
        if vals is None:
            out[name] = getattr(defaults, name)
            continue
        nums = _numbers(field, vals, issues, **ck)
        out[name] = nums if nums is not None else getattr(defaults, name)
    opt = gr.get("optimizer", ["flow"])
    opt = opt if isinstance(opt, list) else [opt]
    if not opt or any(o not in OPTIMIZERS for o in opt) or len(set(opt)) != len(opt):
        issues.append(
            ConfigIssue(
                "grid.optimizer", gr.get("optimizer"), f"must be distinct names from {', '.join(OPTIMIZERS)}"
            )
        )
        opt = ["flow"]
    out["optimizer"] = tuple(opt)
    return GridSpec(**out)


def _output(o, grid, issues) -> OutputSpec:
    d = OutputSpec()
    store = o.get("store", d.store)
    figures = o.get("figures", d.figures)
    for key, val in (("store", store), ("figures", figures)):
        try:
            ok = isinstance(val, str) and bool(val.format(name="x"))
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            issues.append(
                ConfigIssue(f"output.{key}", val, "must be a path; '{name}' is the only placeholder")
            )
    plots = o.get("plots", list(d.plots))
    if not isinstance(plots, list) or any(p not in PLOT_KINDS for p in plots):
        issues.append(ConfigIssue("output.plots", plots, f"must be a list of {', '.join(PLOT_KINDS)}"))
        plots = list(d.plots)
    formats = o.get("formats", list(d.formats))
    if not isinstance(formats, list) or not formats or any(f not in PLOT_FORMATS for f in formats):
        issues.append(
            ConfigIssue("output.formats", formats, f"must be a non-empty list of {', '.join(PLOT_FORMATS)}")
        )
        formats = list(d.formats)
    phase = o.get("phase", [])
    pairs = []
    if not isinstance(phase, list):
        phase = [phase]
    for p in phase:
        if not (isinstance(p, list) and len(p) == 2 and all(a in AXES[:5] for a in p) and p[0] != p[1]):
            issues.append(
                ConfigIssue(
                    "output.phase",
                    p,
                    f"each entry must be a pair of different axes from {', '.join(AXES[:5])}",
                )
            )
            continue
        pairs.append(tuple(p))
    return OutputSpec(
        store if isinstance(store, str) else d.store,
        figures if isinstance(figures, str) else d.figures,
        tuple(plots),
        tuple(formats),
        tuple(pairs),
    )


def _cross_checks(spec: SweepSpec, issues):
    g, t = spec.grid, spec.train
    if t.target == "integrator" and any(w != 0 for w in g.w):
        issues.append(
            ConfigIssue("grid.w", list(g.w), 'must be [0] for train.target = "integrator" (use "oscillator")')
        )
    kinds = {o == "flow" for o in g.optimizer}
    if len(kinds) > 1:
        issues.append(
            ConfigIssue(
                "grid.optimizer",
                list(g.optimizer),
                'cannot mix "flow" (time = steps*dt) with step-based optimisers in one sweep',
            )
        )
    if spec.theory.overlay != "none" and t.scaling != "mean_field":
        issues.append(
            ConfigIssue(
                "theory.overlay",
                spec.theory.overlay,
                'the reduced theories need train.scaling = "mean_field"; use "none"',
            )
        )
    if spec.theory.overlay == "sigma0" and 0.0 not in g.sigma:
        issues.append(ConfigIssue("theory.overlay", "sigma0", "needs 0.0 among grid.sigma"))
    if t.n_log > t.steps + 1:
        issues.append(ConfigIssue("train.n_log", t.n_log, f"must be <= train.steps + 1 = {t.steps + 1}"))
    t_end = spec.t_end
    for s in t.spectra_at:
        if s > t_end:
            issues.append(
                ConfigIssue("train.spectra_at", s, f"must be <= the final time steps*dt = {t_end:g}")
            )
            break
    if "flow" in g.optimizer and t.solver == "stiff" and t.loss == "sampled":
        issues.append(
            ConfigIssue(
                "train.solver",
                t.solver,
                '"stiff" integrates a deterministic flow: needs train.loss = "exact", "finite_horizon" or "discrete"',
            )
        )
    fixed_step = t.solver != "stiff"  # StiffFlow sizes its own steps: dt is only the unit of the log grid
    if "flow" in g.optimizer and t.loss in ("exact", "discrete") and fixed_step and not t.allow_unstable:
        # near the optimum the flow's stiffest Hessian eigenvalue is about 0.25 / c^3 (docs/concepts.md §4)
        c_min = min(g.c) if min(g.c) > 0 else None
        if c_min is not None:
            limit = STEP_LIMITS[t.solver]
            h_max = learned_curvature(c_min)
            dt_max = limit / (max(g.eta) * h_max)
            if t.dt > dt_max:
                issues.append(
                    ConfigIssue(
                        "train.dt",
                        t.dt,
                        f"must be <= {dt_max:.3g}: {t.solver} is unstable for eta*dt > {limit}/(0.25/c^3) at c = {c_min:g}, "
                        f'eta = {max(g.eta):g} (use train.solver = "stiff", or set train.allow_unstable = true)',
                    )
                )
    if t.gramian == "low_rank" and (t.loss != "exact" or t.target != "integrator"):
        issues.append(
            ConfigIssue(
                "train.gramian",
                t.gramian,
                '"low_rank" needs train.loss = "exact" and train.target = "integrator" (real poles); use "dense"',
            )
        )
    if t.loss == "sampled" and t.burn_in >= t.sample_steps:
        issues.append(
            ConfigIssue("train.burn_in", t.burn_in, f"must be < train.sample_steps = {t.sample_steps}")
        )
