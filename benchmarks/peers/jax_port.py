"""Plain JAX contender: `jit(vmap(value_and_grad))` of the same math as the torch peers (see `common.py`).

Mode a: `lax.scan` over the T Euler steps, BPTT by `jax.grad`, noise drawn inside the jitted step.
Mode b: the matmul-only Cayley + squared-Smith Lyapunov solve (p = 1, 8 doublings) and q by `jnp.linalg.solve`.

    python benchmarks/peers/jax_port.py --serve          # worker for compare_peers.py
    python benchmarks/peers/jax_port.py --mode b --N 64 --M 64 --n 5
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import B, CSTAR, DT, ETA, J_SMITH, P_CAY, T, init_params, run_request, serve  # noqa: E402

SDT = math.sqrt(DT)
DECAY = 1.0 - CSTAR * DT


def loss_sampled(params, xi):
    W, u, v = params
    N = W.shape[0]
    eye = jnp.eye(N, dtype=W.dtype)
    At = (eye + DT * (W - eye)).T
    uu, vv = SDT * u, v / N

    def body(carry, x):
        h, z = carry
        h = h @ At + x[:, None] * uu[None, :]
        z = DECAY * z + SDT * x
        return (h, z), jnp.sum((h @ vv - z) ** 2)

    _, errs = lax.scan(body, (jnp.zeros((B, N), W.dtype), jnp.zeros((B,), W.dtype)), xi)
    return 0.5 * jnp.sum(errs) / (T * B)


def loss_exact(params):
    W, u, v = params
    N = W.shape[0]
    eye = jnp.eye(N, dtype=W.dtype)
    A = W - eye
    X = jnp.linalg.solve(P_CAY * eye - A, jnp.concatenate([P_CAY * eye + A, u[:, None]], axis=1))
    Ak, w = X[:, :N], X[:, N]
    P = 2.0 * P_CAY * jnp.outer(w, w)
    for _ in range(J_SMITH):
        P = P + Ak @ P @ Ak.T
        Ak = Ak @ Ak
    q = jnp.linalg.solve((1.0 + CSTAR) * eye - W, u)
    return 0.5 * (v @ P @ v / N**2 - 2.0 * (v @ q) / N + 1.0 / (2 * CSTAR))


def _sgd(params, grads):
    (W, u, v), (gW, gu, gv) = params, grads
    N = W.shape[-1]
    return (W - ETA * gW, u - (ETA * N) * gu, v - (ETA * N) * gv)


@jax.jit
def step_sampled(params, key):
    key, sub = jax.random.split(key)
    xi = jax.random.normal(sub, (params[0].shape[0], T, B), dtype=params[0].dtype)
    L, g = jax.vmap(jax.value_and_grad(loss_sampled))(params, xi)
    return _sgd(params, g), L, key


@jax.jit
def step_exact(params):
    L, g = jax.vmap(jax.value_and_grad(loss_exact))(params)
    return _sgd(params, g), L


class State:
    def __init__(self, mode, N, M):
        self.mode, self.M = mode, M
        self.params = tuple(jnp.asarray(a) for a in init_params(N, M))
        self.key = jax.random.PRNGKey(0)

    def run(self, n):
        for _ in range(n):
            if self.mode == "a":
                self.params, L, self.key = step_sampled(self.params, self.key)
            else:
                self.params, L = step_exact(self.params)
        jax.block_until_ready(self.params)
        return float(jnp.mean(L))

    def net_steps(self, n):
        return n * self.M


_states: dict = {}


def handler(req):
    cmd = req["cmd"]
    if cmd == "info":
        return {
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
    if cmd == "run":
        key = (req["mode"], req["N"], req["M"])
        return run_request(_states, key, lambda k: State(*k), req)
    raise ValueError(cmd)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--mode", default="a", choices=("a", "b"))
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--n", type=int, default=3)
    args = ap.parse_args()
    if args.serve:
        serve(handler)
    else:
        r = handler({"cmd": "run", "mode": args.mode, "N": args.N, "M": args.M, "n": args.n})
        print(r, "network-gradient-steps/s =", r["net_steps"] / r["elapsed"])
