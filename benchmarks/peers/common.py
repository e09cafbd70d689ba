"""Shared workload and worker protocol for the peer comparison (`benchmarks/compare_peers.py`).

numpy-only, so every contender (a torch worker, a plain-JAX worker, the jaxrnn worker) can import it.

Workload (the same for every contender): target k*(tau) = exp(-c tau) with c = 0.1 (leaky integrator),
W0 ~ N(0, sigma^2/N) with sigma = 0.1, u0, v0 ~ N(0, 1), readout y = v.h/N, float32, identical initial weights
(`init_params`, numpy seed 0). Plain SGD at eta = 0.02 for W and eta*N for u, v (mean-field rates).
- mode "a" (sampled): Euler dt = 0.1, T = 200 steps, B = 16 white-noise sequences per step, BPTT,
  MSE against the Euler-filtered target z_{t+1} = (1 - c dt) z_t + sqrt(dt) xi_t.
- mode "b" (exact): the closed-form population loss
  L = 1/2 (v^T P v / N^2 - 2 v^T q / N + 1/(2c)),  A P + P A^T + u u^T = 0,  q = ((1 + c) I - W)^{-1} u.
"""

from __future__ import annotations

import json
import sys

import numpy as np

CSTAR = 0.1  # target decay rate c
DT = 0.1  # Euler step (mode a)
T = 200  # sequence length (mode a)
B = 16  # white-noise sequences per step (mode a)
SIGMA = 0.1  # W0 ~ N(0, SIGMA^2 / N)
ETA = 0.02  # SGD rate for W; u and v use ETA * N
P_CAY = 1.0  # Cayley shift of the peers' Smith solver (mode b)
J_SMITH = 8  # the peers' squared-Smith doublings: 2^8 = 256 Stein terms
NAIVE_SUBSET = 4  # the per-network loop is timed on this many networks (its cost is linear in M)


def init_params(N: int, M: int, seed: int = 0):
    """Identical initial weights (float32 numpy arrays W (M, N, N), u (M, N), v (M, N)) for every contender."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, N, N)) * (SIGMA / np.sqrt(N))
    u = rng.standard_normal((M, N))
    v = rng.standard_normal((M, N))
    return W.astype(np.float32), u.astype(np.float32), v.astype(np.float32)


def flops_per_step(mode: str, N: int) -> float:
    """Nominal flops of one network-gradient-step of the peers' algorithms (forward + backward).

    a: T*B matvecs forward (2 N^2 each), two per step backward (A^T g and g h^T): 6 T B N^2.
    b (Cayley + squared Smith, J doublings): 3 N^3-matmuls per doubling forward, ~2x that backward (18 J N^3),
      plus the LU solves (~3.3 N^3 forward, ~5 N^3 backward).
    """
    if mode == "a":
        return 6.0 * T * B * N * N
    return (18.0 * J_SMITH + 8.3) * N**3


def serve(handler) -> None:
    """JSON-lines request/reply loop on stdin/stdout (stdout is reserved for replies; prints go to stderr)."""
    out = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            rep = handler(req)
        except Exception as e:  # report it and keep serving (e.g. an out-of-memory request)
            import traceback

            traceback.print_exc()
            rep = {"error": repr(e)}
        out.write(json.dumps(rep) + "\n")
        out.flush()


def run_request(states: dict, key, make, req) -> dict:
    """Common 'run' handling: build the state on first use (timed: setup + compile + one warm-up step), then time
    `req['n']` units. `make(key)` returns an object with `.run(n) -> loss` and `.net_steps(n)`."""
    import time

    first = key not in states
    rep = {}
    if first:
        states.clear()  # free the previous configuration's memory
        t0 = time.perf_counter()
        st = make(key)
        st.run(1)
        states[key] = st
        rep["setup_s"] = time.perf_counter() - t0
    st = states[key]
    n = int(req["n"])
    t0 = time.perf_counter()
    loss = st.run(n)
    el = time.perf_counter() - t0
    rep.update(elapsed=el, net_steps=st.net_steps(n), loss=loss)
    return rep
