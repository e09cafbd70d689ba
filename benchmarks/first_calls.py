"""First-call cost (set-up and compile) of jaxrnn against the plain JAX port, each timed alone.

`compare_peers.py` times first calls inside long-lived workers that share the machine with the other
contenders; here each first call runs in a fresh Python process pinned to one core, contenders alternating
round by round, so the two see the same machine state. The number is `setup_s` of the peer scripts
(`peers/jax_port.py`, `peers/jaxrnn_peer.py`): building the population and the first call with one step,
compile included (imports excluded). `--baseline DIR` adds a jaxrnn tree (e.g. a `git worktree` of an older
commit) run by the same peer script, importing jaxrnn from DIR.

    python benchmarks/first_calls.py --core 0 --rounds 3 --out benchmarks/data/first_calls_run1.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = "b/64,b/128,a/64"  # mode/N: exact N = 64 and 128, sampled N = 64


def first_call(script: str, mode: str, N: int, M: int, core: int | None, pythonpath: str | None) -> float:
    """`setup_s` of one fresh process running the peer script once (n = 1)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, os.path.join(HERE, "peers", script), "--mode", mode, "--N", str(N), "--M", str(M)]
    cmd += ["--n", "1"]
    if core is not None:
        cmd = ["taskset", "-c", str(core)] + cmd
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"'setup_s': ([0-9.eE+-]+)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--M", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=None, help="pin every process to this core (taskset)")
    ap.add_argument("--baseline", default=None, help="a jaxrnn source tree to time as well")
    ap.add_argument("--workloads", default=WORKLOADS, help=f"comma-separated mode/N (default {WORKLOADS})")
    ap.add_argument("--out", default=None, help="JSON file for the raw times")
    a = ap.parse_args()
    contenders = {"jax_port": ("jax_port.py", None), "jaxrnn": ("jaxrnn_peer.py", None)}
    if a.baseline:
        contenders["jaxrnn_baseline"] = ("jaxrnn_peer.py", os.path.abspath(a.baseline))
    times: dict[str, dict[str, list[float]]] = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    for key in a.workloads.split(","):
        mode, N = key.split("/")[0], int(key.split("/")[1])
        times[key] = {name: [] for name in contenders}
        for r in range(a.rounds):
            for name, (script, path) in contenders.items():
                s = first_call(script, mode, N, a.M, a.core, path)
                times[key][name].append(s)
                print(f"mode {mode} N={N} {name} round {r + 1}: setup_s {s:.2f}", flush=True)
    print(f"\nfirst calls alone, M = {a.M}, core {a.core}, {a.rounds} rounds from {started}")
    print("| mode | N | " + " | ".join(f"{n} (s)" for n in contenders) + " | jaxrnn / port (per round) |")
    print("|---|---|" + "---|" * (len(contenders) + 1))
    for key, t in times.items():
        mode, N = key.split("/")
        ratios = np.array(t["jaxrnn"]) / np.array(t["jax_port"])
        cells = " | ".join(", ".join(f"{x:.1f}" for x in t[n]) for n in contenders)
        print(
            f"| {mode} | {N} | {cells} | {', '.join(f'{x:.2f}x' for x in ratios)} (max {ratios.max():.2f}x) |"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"started": started, "M": a.M, "core": a.core, "times": times}, f, indent=1)


if __name__ == "__main__":
    main()
