"""`explain`'s time estimate against the measured wall time of the same sweep, side by side.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_estimate.py sweeps/quickstart.toml sweeps/paper/phase_c_sigma.toml

For each config: the estimate (compile, steps, log points, theory) before running, then a fresh run into
a temporary folder (no figures), and the ratio measured / estimated. The budget check (issue: the estimate
within 2x of the measured time) passes when every ratio lies in [0.5, 2].
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from jaxrnn.sweep import load_spec, run_sweep  # noqa: E402
from jaxrnn.sweep._grid import estimate  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--json", help="write the rows as JSON here")
    a = ap.parse_args(argv)
    rows = []
    for cfg in a.configs:
        spec = load_spec(cfg)
        jax.config.update("jax_enable_x64", spec.train.dtype == "float64")
        t0 = time.perf_counter()
        est = estimate(spec)
        t_est = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            s = run_sweep(spec, Path(d) / "s.zarr", quiet=True)
            wall = time.perf_counter() - t0
        row = dict(
            config=cfg,
            estimate_s=est.total_s,
            compile_s=est.compile_s,
            steps_s=est.train_s,
            log_s=est.log_s,
            theory_s=est.theory_s,
            measured_s=wall,
            measured_compile_s=s.compile_s,
            ratio=wall / est.total_s,
            estimate_took_s=t_est,
        )
        rows.append(row)
        print(
            f"{cfg}: estimated {est.total_s:.1f} s (compile {est.compile_s:.0f}, steps {est.train_s:.1f}, log "
            f"{est.log_s:.1f}, theory {est.theory_s:.1f}; the estimate took {t_est:.2f} s), measured {wall:.1f} s "
            f"(compile ~{s.compile_s:.1f} s): ratio {wall / est.total_s:.2f}",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(0.5 <= r["ratio"] <= 2 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
