"""Regenerate the gallery: run every gallery command, time it, copy its PNGs next to this file.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python docs/gallery/make_gallery.py [--out /tmp/gallery-results]

Each entry is exactly the command shown in docs/gallery.md, run fresh (`--fresh`, into `--out`, with the
persistent compilation cache off: JAXRNN_CACHE=0), so the runtimes in `runtimes.json` are those of a first
run on this machine, compilation and theory included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# (store/figure name, command after `jaxrnn`)
COMMANDS = [
    ("quickstart", ["run", "sweeps/quickstart.toml"]),
    ("quickstart-theory", ["theory", "sweeps/quickstart.toml"]),
    ("integrator_rich", ["run", "sweeps/paper/integrator_rich.toml"]),
    ("lazy_large_sigma", ["run", "sweeps/paper/lazy_large_sigma.toml"]),
    ("oscillator_pair", ["run", "sweeps/paper/oscillator_pair.toml"]),
    ("phase_c_sigma", ["run", "sweeps/paper/phase_c_sigma.toml"]),
    ("phase_c_sigma-theory", ["theory", "sweeps/paper/phase_c_sigma.toml"]),
    ("phase_sigma_N", ["run", "sweeps/paper/phase_sigma_N.toml"]),
    ("phase_sigma_w", ["run", "sweeps/paper/phase_sigma_w.toml"]),
    ("phase_sigma_w-theory", ["theory", "sweeps/paper/phase_sigma_w.toml"]),
    ("sigma0_theory_check", ["run", "sweeps/paper/sigma0_theory_check.toml"]),
    ("small_c_stiff", ["run", "sweeps/small_c_stiff.toml"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/jaxrnn-gallery", help="where the stores and figures go")
    ap.add_argument("--only", nargs="*", help="names to (re)run; default: all")
    args = ap.parse_args()
    out = Path(args.out)
    times_file = HERE / "runtimes.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    exe = Path(sys.executable).with_name("jaxrnn")
    for name, cmd in COMMANDS:
        if args.only and name not in args.only:
            continue
        full = [str(exe), *cmd, "--out", str(out), "--fresh", "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(full, cwd=ROOT, check=True, env={**os.environ, "JAXRNN_CACHE": "0"})
        wall = time.perf_counter() - t0
        times[name] = dict(command="jaxrnn " + " ".join(cmd), wall_s=round(wall, 1))
        print(f"{name}: {wall:.1f} s", flush=True)
        dest = HERE / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir()
        for png in sorted((out / name).glob("*.png")):
            shutil.copy(png, dest / png.name)
    times_file.write_text(json.dumps(times, indent=1) + "\n")


if __name__ == "__main__":
    main()
