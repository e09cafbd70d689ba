"""jaxrnn against the peers a researcher would otherwise use, interleaved on one pinned core.

Contenders (each a long-lived worker process from `benchmarks/peers/`, JSON lines over stdin/stdout):
- `torch_naive` (mode a), `torch_batched` (a: bmm BPTT; b: eig), `torch_batched_smith` (b): `peers/torch_peer.py`
  (skipped cleanly when the worker's python has no torch; `pip install torch==2.13.0` is a CPU build);
- `jax_port`: a plain `jit(vmap(value_and_grad))` port of the same math (`peers/jax_port.py`);
- `jaxrnn`: the project's public API at its defaults (`peers/jaxrnn_peer.py`).
Workload (`peers/common.py`): c = 0.1 leaky integrator, sigma = 0.1, eta = 0.02, float32, the same initial weights
for all; mode a = sampled (Euler dt = 0.1, T = 200, B = 16, BPTT), mode b = exact loss.

Method: every worker is pinned to the same core (`taskset -c CORE`, when taskset exists) with a single-threaded
environment (OPENBLAS/OMP/MKL_NUM_THREADS=1, XLA's intra-op pool of 1, JAX_PLATFORMS=cpu). For each configuration
each contender is called once (its first call: set-up + compile + a warm step = `setup_s`, and a calibration), then
`--reps` rounds run round-robin, each call sized to take about `--target` seconds; the best round counts
(network-gradient-steps/s). Ratios are to the best peer (every contender but jaxrnn) of the same configuration,
best round to best round, and median to the best peer median (jaxrnn's rate is a difference of two timed calls, so
its best round is the more optimistic one when the load varies).

    python benchmarks/compare_peers.py                                   # a:64:512, b:64:512, b:128:512
    python benchmarks/compare_peers.py --configs a:16:32,b:16:32 --reps 2 --target 0.2 --no-torch   # seconds
    PEERS_TORCH_PY=~/torchenv/bin/python python benchmarks/compare_peers.py  # torch from another environment

Writes `--out` (JSON: info, rows) and `--md` (a markdown table); prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)
from common import flops_per_step  # noqa: E402

SINGLE_THREAD = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}


class Worker:
    """A long-lived contender process (pinned with taskset when available)."""

    def __init__(self, python, script, core, timeout):
        env = dict(os.environ, **SINGLE_THREAD)
        cmd = [python, os.path.join(PEERS, script), "--serve"]
        if core is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(core)] + cmd
        self.name, self.timeout = script, timeout
        self.p = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=PEERS,
        )

    def ask(self, **req):
        if self.p.poll() is not None:
            return {"error": f"{self.name} exited with {self.p.returncode}"}
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], self.timeout)
        line = self.p.stdout.readline() if ready else ""
        if not line:
            self.close()
            return {"error": f"{self.name}: no reply within {self.timeout} s (or it died)"}
        return json.loads(line)

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write('{"cmd": "quit"}\n')
                self.p.stdin.flush()
                self.p.wait(10)
            except Exception:
                self.p.kill()


def has_torch(python):
    r = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, env=dict(os.environ, **SINGLE_THREAD)
    )
    return r.returncode == 0


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def parse_configs(s):
    out = []
    for c in s.split(","):
        m, n, k = c.split(":")
        if m not in ("a", "b"):
            raise SystemExit(f"--configs: mode must be a or b, got {m!r} in {c!r}")
        out.append((m, int(n), int(k)))
    return out


def markdown(rows, info):
    lines = [
        "| mode | N | M | contender | net-steps/s (best) | median | vs best peer (best) | (median) | first call (s) "
        "| nominal GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['N']} | {r['M']} | {r['name']} | {r['best']:.1f} | {r['median']:.1f} | "
            f"{r['ratio_to_best_peer']:.2f}x | {r['median_ratio_to_best_peer']:.2f}x | {r['setup_s']:.1f} | {r['gflops']:.2f} |"
        )
    lines.append("")
    lines.append(
        f"mode a = sampled (Euler dt 0.1, T 200, B 16, BPTT), b = exact loss; float32; one core "
        f"(pinned: {info['pinned']}); load average {info['load_start']} -> {info['load_end']}."
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--configs", default="a:64:512,b:64:512,b:128:512", help="mode:N:M,... (mode a sampled, b exact)"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--target", type=float, default=1.0, help="seconds per timed call")
    ap.add_argument("--core", type=int, default=0, help="core to pin every worker to (-1: no pinning)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch contenders")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a worker may take for one request")
    ap.add_argument("--out", default=os.path.join(HERE, "data", "compare_peers.json"))
    ap.add_argument("--md", default=None, help="markdown table path (default: --out with .md)")
    args = ap.parse_args(argv)
    configs = parse_configs(args.configs)
    core = None if args.core < 0 else args.core
    torch_py = os.environ.get("PEERS_TORCH_PY", sys.executable)
    jax_py = os.environ.get("PEERS_JAX_PY", sys.executable)

    workers = {}
    if not args.no_torch and has_torch(torch_py):
        workers["torch"] = Worker(torch_py, "torch_peer.py", core, args.timeout)
    elif not args.no_torch:
        print(f"torch not importable by {torch_py}: torch contenders skipped", flush=True)
    workers["jax_port"] = Worker(jax_py, "jax_port.py", core, args.timeout)
    workers["jaxrnn"] = Worker(jax_py, "jaxrnn_peer.py", core, args.timeout)
    info = {k: w.ask(cmd="info") for k, w in workers.items()}
    info.update(
        pinned=core is not None and shutil.which("taskset") is not None,
        core=core,
        load_start=loadavg(),
        configs=args.configs,
        reps=args.reps,
        target_s=args.target,
        python=sys.version.split()[0],
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    print(json.dumps(info), flush=True)
    contenders = {
        "a": [
            ("torch_naive", "torch", "naive"),
            ("torch_batched", "torch", "batched"),
            ("jax_port", "jax_port", None),
            ("jaxrnn", "jaxrnn", None),
        ],
        "b": [
            ("torch_batched_eig", "torch", "batched"),
            ("torch_batched_smith", "torch", "batched_smith"),
            ("jax_port", "jax_port", None),
            ("jaxrnn", "jaxrnn", None),
        ],
    }
    rows, errors = [], []
    for mode, N, M in configs:
        live = []
        for name, wkey, cont in contenders[mode]:
            if wkey not in workers:
                continue
            req = dict(cmd="run", mode=mode, N=N, M=M)
            if cont is not None:
                req["contender"] = cont
            r = workers[wkey].ask(n=1, **req)
            if "error" in r:
                print(f"ERROR {mode}:{N}:{M} {name}: {r['error']}", flush=True)
                errors.append(dict(mode=mode, N=N, M=M, name=name, error=r["error"]))
                continue
            setup, n = r.get("setup_s", 0.0), 1
            while (
                not r["elapsed"] >= args.target / 4 and n < 100_000
            ):  # calibrate: grow n until a call takes target/4 (an invalid, NaN, timing grows it too)
                el = r["elapsed"] if r["elapsed"] > 0 else 0.0  # NaN > 0 is False
                n = int(n * min(8.0, max(2.0, args.target / 4 / max(el, 1e-9))))
                r = workers[wkey].ask(n=n, **req)
                if "error" in r:
                    break
            if "error" in r:
                print(f"ERROR {mode}:{N}:{M} {name}: {r['error']}", flush=True)
                errors.append(dict(mode=mode, N=N, M=M, name=name, error=r["error"]))
                continue
            n = max(1, int(round(n * args.target / max(r["elapsed"], 1e-9))))
            live.append(dict(name=name, w=workers[wkey], req=req, n=n, setup=setup, tps=[], loss=None))
        for _ in range(args.reps):  # round-robin
            for c in live:
                r = c["w"].ask(n=c["n"], **c["req"])
                if "error" in r:
                    print(f"ERROR {mode}:{N}:{M} {c['name']}: {r['error']}", flush=True)
                    continue
                if not r["elapsed"] > 0:  # jaxrnn's difference of two calls was lost in the noise
                    c["invalid"] = c.get("invalid", 0) + 1
                    print(f"invalid round {mode}:{N}:{M} {c['name']} (timed difference <= 0)", flush=True)
                    continue
                c["tps"].append(r["net_steps"] / r["elapsed"])
                c["loss"] = r["loss"]
        # a contender whose every round was invalid still gets its row, with NaN rates and the count
        done = [c for c in live if c["tps"] or c.get("invalid")]
        peers = [max(c["tps"]) for c in done if c["name"] != "jaxrnn" and c["tps"]]
        best_peer = max(peers) if peers else float("nan")
        med_peer = max(
            [statistics.median(c["tps"]) for c in done if c["name"] != "jaxrnn" and c["tps"]]
            or [float("nan")]
        )
        for c in done:
            best = max(c["tps"]) if c["tps"] else float("nan")
            row = dict(
                mode=mode,
                N=N,
                M=M,
                name=c["name"],
                best=best,
                median=statistics.median(c["tps"]) if c["tps"] else float("nan"),
                all=c["tps"],
                n_per_call=c["n"],
                invalid_rounds=c.get("invalid", 0),
                setup_s=c["setup"],
                loss=c["loss"],
                ratio_to_best_peer=best / best_peer,
                median_ratio_to_best_peer=(statistics.median(c["tps"]) if c["tps"] else float("nan"))
                / med_peer,
                gflops=best * flops_per_step(mode, N) / 1e9,
                load=loadavg(),
            )
            rows.append(row)
            print(
                f"{mode} N={N} M={M} {c['name']:20s} best {best:10.1f}  median {row['median']:10.1f} net-steps/s  "
                f"x{row['ratio_to_best_peer']:.2f} of best peer  first call {c['setup']:.1f} s  loss {c['loss'] if c['loss'] is not None else float('nan'):.4g}"
                + (f"  ({c['invalid']} invalid rounds)" if c.get("invalid") else ""),
                flush=True,
            )
    info["load_end"] = loadavg()
    for w in workers.values():
        w.close()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"info": info, "rows": rows, "errors": errors}, f, indent=1)
    md = markdown(rows, info)
    md_path = args.md or os.path.splitext(args.out)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {args.out} and {md_path}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
