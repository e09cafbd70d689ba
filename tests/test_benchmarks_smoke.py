"""Smoke test of the benchmark scripts: `gpu_check.py --small` and a tiny peer comparison without torch.

Both run as subprocesses at the same time (each compiles its own programs); the test checks that the JSON they
write has the fields the docs quote and that the rates and ratios are finite. Torch is not needed.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # conftest's fake 4-device host is not what the scripts measure
    return env


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_exact_step_flop_count():
    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(BENCH, "gpu_check.py"))
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    # Cayley 14/3 + Smith 10 K + resolvents 16/3 per pole + O P 2, in units of N^3
    assert math.isclose(gc.exact_step_flops(64, 12), (10 * 12 + 12) * 64**3, rel_tol=1e-12)
    assert gc.exact_doublings(gc.jaxrnn.leaky_integrator(0.1)) >= 4
    # fast path: LU + inverse 8/3, 4 factored squarings 2 each, K - 4 dense doublings 10 each, O P 2 (N = 64)
    assert math.isclose(gc.fast_exact_step_flops(64, 10), (8 / 3 + 8 + 60 + 2) * 64**3, rel_tol=1e-12)


def test_gpu_check_small_and_peer_comparison(tmp_path):
    gc_out, cp_out = tmp_path / "gpu_check.json", tmp_path / "peers.json"
    gc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(BENCH, "gpu_check.py"),
            "--small",
            "--sections",
            "peak,sweep,grid",
            "--modes",
            "exact",
            "--budget",
            "0",
            "--out",
            str(gc_out),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cp = subprocess.Popen(
        [
            sys.executable,
            os.path.join(BENCH, "compare_peers.py"),
            "--configs",
            "b:8:8",
            "--reps",
            "1",
            "--target",
            "0.02",
            "--no-torch",
            "--core",
            "-1",
            "--out",
            str(cp_out),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    gc_log, _ = gc.communicate(timeout=300)
    cp_log, _ = cp.communicate(timeout=300)
    assert gc.returncode == 0, gc_log
    assert cp.returncode == 0, cp_log

    r = json.loads(gc_out.read_text())
    assert _finite(r["peak"]["float32_default_gflops"]) and r["peak"]["float32_highest_gflops"] > 0
    assert (
        r["sweep"]["status"] == "ok"
        and r["sweep"]["wall_incl_compile_s"] >= r["sweep"]["wall_excl_compile_s"] > 0
    )
    assert _finite(r["sweep"]["achieved_gflops"])
    cell = r["grid"][0]
    assert cell["status"] == "ok" and cell["mode"] == "exact", cell
    assert cell["net_steps_per_s"] > 0 and _finite(cell["achieved_gflops"]) and cell["doublings"] > 0
    assert cell["flop_model"] and cell["flops_per_net_step"] > 0

    p = json.loads(cp_out.read_text())
    names = {row["name"] for row in p["rows"]}
    assert {"jax_port", "jaxrnn"} <= names, p
    for row in p["rows"]:
        # a rate, or (jaxrnn's difference of two timed calls lost in the noise of these tiny calls) a row
        # that says its rounds were invalid: never a made-up rate
        valid = row["best"] > 0 and _finite(row["ratio_to_best_peer"])
        flagged = row["invalid_rounds"] > 0 and not _finite(row["best"])
        assert (valid or flagged) and _finite(row["setup_s"]), row
    assert cp_out.with_suffix(".md").read_text().startswith("| mode |")


def test_first_calls_script(tmp_path):
    """`first_calls.py` runs both contenders in fresh processes and records a positive time for each."""
    out = tmp_path / "first.json"
    cmd = [sys.executable, os.path.join(BENCH, "first_calls.py"), "--M", "4", "--rounds", "1"]
    subprocess.run(
        cmd + ["--workloads", "b/8", "--out", str(out)], env=_env(), check=True, capture_output=True
    )
    times = json.loads(out.read_text())["times"]["b/8"]
    assert set(times) == {"jax_port", "jaxrnn"} and all(_finite(t[0]) and t[0] > 0 for t in times.values())
