"""The main job end to end (`jaxrnn run sweeps/quickstart.toml`), this tree against a baseline checkout,
first runs side by side.

Each run is a fresh process in a fresh directory with an empty compilation cache (`XDG_CACHE_HOME` a new
temporary directory), so it pays what a first run on a fresh machine pays: imports, compilation, training,
theory, the store and the figures. Runs alternate between the contenders (`--rounds` each), pinned to one
core (`taskset -c CORE`) with OPENBLAS_NUM_THREADS=1; wall and CPU seconds of the whole process are reported.
The baseline runs its own code from `--baseline` (a checkout, e.g. `git worktree add /tmp/aeb aeb90cb`, put
first on PYTHONPATH) with the same Python environment, and its own config (`--baseline-config`, default: the
baseline's sweeps/quickstart.toml).

    git worktree add /tmp/aeb aeb90cb
    python benchmarks/bench_main_job.py --baseline /tmp/aeb --rounds 3 --out benchmarks/data/bench_main_job.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(code_root: Path, config: Path, core: int) -> dict:
    """One first run of `config` with the jaxrnn package of `code_root`; wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as cache:
        shutil.copy(config, Path(work) / "sweep.toml")
        env = dict(os.environ, XDG_CACHE_HOME=cache, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(code_root))
        env.pop("JAXRNN_CACHE", None)
        cmd = [sys.executable, "-c", "import sys; from jaxrnn.cli import main; sys.exit(main())", "run"]
        cmd += ["sweep.toml", "--quiet"]
        if core >= 0 and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(core)] + cmd
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"{code_root}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        pngs = sorted(p.name for p in Path(work).rglob("*.png"))
        stores = sorted(p.name for p in Path(work).rglob("*.zarr"))
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return dict(wall_s=wall, cpu_s=cpu, figures=pngs, stores=stores)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, help="a checkout of the baseline commit")
    ap.add_argument("--config", type=Path, default=ROOT / "sweeps" / "quickstart.toml")
    ap.add_argument("--baseline-config", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=0, help="-1: no pinning")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    base_cfg = a.baseline_config or a.baseline / "sweeps" / "quickstart.toml"
    contenders = {
        "current": (ROOT, a.config),
        "current, baseline config": (ROOT, base_cfg),
        "baseline": (a.baseline, base_cfg),
    }
    runs: dict[str, list] = {k: [] for k in contenders}
    for r in range(a.rounds):
        for name, (code, cfg) in contenders.items():
            res = run_once(code, cfg, a.core)
            runs[name].append(res)
            print(
                f"round {r + 1} {name:>25}: wall {res['wall_s']:.1f} s, cpu {res['cpu_s']:.1f} s", flush=True
            )
    best = {k: min(x["wall_s"] for x in v) for k, v in runs.items()}
    for name in ("current", "current, baseline config"):
        print(f"{name}: best {best[name]:.1f} s; baseline best {best['baseline']:.1f} s: "
              f"{best['baseline'] / best[name]:.2f}x faster")  # fmt: skip
    if a.out:
        meta = dict(baseline=str(a.baseline), config=str(a.config), baseline_config=str(base_cfg), core=a.core,
                    load_average=os.getloadavg(), python=sys.version.split()[0])  # fmt: skip
        a.out.write_text(json.dumps(dict(meta=meta, runs=runs, best_wall_s=best), indent=1))
        print("wrote", a.out)


if __name__ == "__main__":
    main()
