"""PyTorch contenders (CPU, float32): what a torch user writes for the peer workload (see `common.py`).

- `naive`: one network at a time in a Python loop (autograd), timed on `NAIVE_SUBSET` networks (cost is linear in M).
- `batched`: all M networks as batched tensors (bmm).
Mode b (exact) loss, two ways:
- `eig` (naive, batched): the modal form a torch user writes, autograd through `torch.linalg.eig` (complex64):
  A = W - I = V diag(lam) V^-1, ut = V^-1 u, vt = V^T v, r = ut * vt,
  v^T P v = -sum_ij r_i r_j / (lam_i + lam_j),  v^T q = sum_i r_i / (c - lam_i).
- `smith` (batched): the matmul-only Cayley + squared-Smith solver (p = 1, 8 doublings), as the JAX port.

    python benchmarks/peers/torch_peer.py --serve                      # worker for compare_peers.py
    python benchmarks/peers/torch_peer.py --mode b --N 64 --M 64 --contender batched_smith
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import B, CSTAR, DT, ETA, J_SMITH, NAIVE_SUBSET, P_CAY, T, init_params, run_request, serve  # noqa: E402

SDT = math.sqrt(DT)
DECAY = 1.0 - CSTAR * DT


def loss_sampled(W, u, v, xi):
    """One network (W (N, N), xi (T, B)) or a batch (W (M, N, N), xi (M, T, B)); per-network loss."""
    N = W.shape[-1]
    eye = torch.eye(N, dtype=W.dtype)
    At = (eye + DT * (W - eye)).transpose(-1, -2)  # h_{t+1} = h_t A^T (row vectors)
    h = torch.zeros(W.shape[:-2] + (B, N), dtype=W.dtype)
    z = torch.zeros(W.shape[:-2] + (B,), dtype=W.dtype)
    uu = (SDT * u).unsqueeze(-2)
    vv = (v / N).unsqueeze(-1)
    err = 0.0
    for t in range(T):
        x = xi[..., t, :]
        h = h @ At + x.unsqueeze(-1) * uu
        z = DECAY * z + SDT * x
        y = (h @ vv).squeeze(-1)
        err = err + ((y - z) ** 2).sum(-1)
    return 0.5 * err / (T * B)


def loss_exact_eig(W, u, v):
    N = W.shape[-1]
    lam, V = torch.linalg.eig(W - torch.eye(N, dtype=W.dtype))
    ut = torch.linalg.solve(V, u.to(V.dtype).unsqueeze(-1)).squeeze(-1)
    vt = (V.transpose(-1, -2) @ v.to(V.dtype).unsqueeze(-1)).squeeze(-1)
    r = ut * vt
    S = lam.unsqueeze(-1) + lam.unsqueeze(-2)
    vPv = -(r.unsqueeze(-1) * r.unsqueeze(-2) / S).sum((-1, -2)).real
    vq = (r / (CSTAR - lam)).sum(-1).real
    return 0.5 * (vPv / N**2 - 2.0 * vq / N + 1.0 / (2 * CSTAR))


def lyap_smith(W, u):
    """P with (W - I) P + P (W - I)^T + u u^T = 0: Cayley transform, then squared Smith doubling."""
    N = W.shape[-1]
    eye = torch.eye(N, dtype=W.dtype)
    A = W - eye
    rhs = torch.cat([P_CAY * eye + A, u.unsqueeze(-1)], dim=-1)
    X = torch.linalg.solve(P_CAY * eye - A, rhs.expand(A.shape[:-2] + rhs.shape[-2:]))
    Ak, w = X[..., :N], X[..., N:]
    P = 2.0 * P_CAY * (w @ w.transpose(-1, -2))
    for _ in range(J_SMITH):
        P = P + Ak @ P @ Ak.transpose(-1, -2)
        Ak = Ak @ Ak
    return P


def loss_exact_smith(W, u, v):
    N = W.shape[-1]
    P = lyap_smith(W, u)
    q = torch.linalg.solve((1.0 + CSTAR) * torch.eye(N, dtype=W.dtype) - W, u.unsqueeze(-1)).squeeze(-1)
    vPv = (v.unsqueeze(-2) @ P @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return 0.5 * (vPv / N**2 - 2.0 * (v * q).sum(-1) / N + 1.0 / (2 * CSTAR))


LOSS_EXACT = {"naive": loss_exact_eig, "batched": loss_exact_eig, "batched_smith": loss_exact_smith}
CONTENDERS = {"a": ("naive", "batched"), "b": ("naive", "batched", "batched_smith")}


def step(mode, contender, W, u, v):
    """One SGD step in place on (possibly batched) parameters; returns the per-network loss."""
    L = (
        loss_sampled(W, u, v, torch.randn(W.shape[:-2] + (T, B)))
        if mode == "a"
        else LOSS_EXACT[contender](W, u, v)
    )
    gW, gu, gv = torch.autograd.grad(L.sum(), (W, u, v))
    N = W.shape[-1]
    with torch.no_grad():
        W -= ETA * gW
        u -= (ETA * N) * gu
        v -= (ETA * N) * gv
    return L.detach()


class State:
    def __init__(self, mode, N, M, contender):
        if contender not in CONTENDERS[mode]:
            raise ValueError(f"contender {contender!r} not in {CONTENDERS[mode]} for mode {mode!r}")
        self.mode, self.M, self.contender = mode, M, contender
        m = min(M, NAIVE_SUBSET) if contender == "naive" else M
        W, u, v = init_params(N, M)
        if contender == "naive":
            self.nets = [tuple(torch.tensor(a[i], requires_grad=True) for a in (W, u, v)) for i in range(m)]
        else:
            self.params = tuple(torch.tensor(a, requires_grad=True) for a in (W, u, v))
        self.k = 0

    def run(self, n):
        """naive: n network-steps (cycling over the subset); batched: n steps of all M networks."""
        if self.contender == "naive":
            for _ in range(n):
                L = step(self.mode, "naive", *self.nets[self.k % len(self.nets)])
                self.k += 1
            return float(L)
        for _ in range(n):
            L = step(self.mode, self.contender, *self.params)
        return float(L.mean())

    def net_steps(self, n):
        return n if self.contender == "naive" else n * self.M


def peak(n=2048, reps=3):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return {"torch_float32_gflops": 2.0 * n**3 / min(ts) / 1e9}


_states: dict = {}


def handler(req):
    cmd = req["cmd"]
    if cmd == "info":
        return {"torch": torch.__version__, "threads": torch.get_num_threads(), "flush_denormal": FLUSH}
    if cmd == "peak":
        return peak()
    if cmd == "run":
        key = (req["mode"], req["N"], req["M"], req["contender"])
        return run_request(_states, key, lambda k: State(*k), req)
    raise ValueError(cmd)


FLUSH = False
if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--mode", default="a", choices=("a", "b"))
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--contender", default="batched")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--no-flush-denormal", action="store_true")
    args = ap.parse_args()
    # The Smith powers F^(2^j) underflow to denormals; flushing them is what XLA does by default.
    FLUSH = bool(not args.no_flush_denormal and torch.set_flush_denormal(True))
    if args.serve:
        serve(handler)
    else:
        r = handler(
            {
                "cmd": "run",
                "mode": args.mode,
                "N": args.N,
                "M": args.M,
                "contender": args.contender,
                "n": args.n,
            }
        )
        print(r, "network-gradient-steps/s =", r["net_steps"] / r["elapsed"])
