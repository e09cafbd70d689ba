"""N -> inf finite-sigma theory: the deterministic limit of the depth-k block-Krylov reduction.

Derivation (docs/concepts.md §6). As N -> inf with W0_ij ~ N(0, sigma^2/N) and u0, v0 independent
N(0, 1) vectors, every normalised inner product <w1(W0, W0^T) x, w2(W0, W0^T) y>/N (x, y in {u0, v0})
converges to the vacuum expectation in the free-probability model

    W0 -> c = sigma (l1 + l2^*)   on the full Fock space F(C^2) (l_i: left creation of e_i),
    u0/sqrt(N) -> Omega (x) f1,   v0/sqrt(N) -> Omega (x) f2     (two orthogonal copies of the vacuum),

since u0 and v0 are asymptotically free of W0 and orthogonal to each other. The depth-k Krylov space
becomes S = span{tensors of length <= k} in each copy (the words in (c, c^*) of length <= k applied to Omega
span exactly those), of dimension d = 2 (2^(k+1) - 1), with the tensor basis orthonormal.

The reduced network is W = c + E m E^T, u = E a, v = E b (E: the inclusion of S), with impulse response
k(tau) = <v, e^{(W - I) tau} u>, and the flow dm/dt = -eta E^T dL/dW E, da/dt = -eta dL/da, db/dt = -eta dL/db
from m = 0, a = Omega_1, b = Omega_2 (the Galerkin flow of `_krylov`).

**The compression is exact.** c maps a word w of length k to sigma (1 w) (and removes leading 2s), so the
words that c reaches from S and that are not in S all start with e1: T = span{1^n w : n >= 1, |w| = k}. c maps T
into T (l1 prepends another 1; l2^* annihilates words starting with 1) and E m E^T vanishes on T, so T is
invariant under W, and in the splitting S + T

    W = [[W_SS, 0], [W_TS, W_TT]],     W_SS = E^T c E + m =: C_k + m.

The matrix exponential keeps the block-triangular form, so E^T e^{(W - I) tau} E = e^{(W_SS - I) tau}: the
impulse response, the Gramians seen from u and v, the loss and its projections E^T dL/dW E, dL/da, dL/db are
exactly those of the d-dimensional network (C_k + m, a, b). (For W^T the same holds with 2s in place of 1s.)
The depth-k Fock theory is therefore gradient flow of a d-dimensional linear RNN whose recurrent weights are
the fixed matrix C_k plus the learned m; no chain of longer words has to be kept (a version that kept
n <= 12 links of T gave the same loss to 1e-13 at 8-20x the cost; `tests/test_theory_fast.py` checks the
block-triangular identity against that D-dimensional model).

Outlier. c has spectrum the closed disk |lambda| <= sigma (Brown measure of the circular element); eigenvalues
of W_SS outside it are the outliers. The reported `outlier` is the rightmost outlier with |lambda| > sigma or,
if there is none, the bulk's rightmost point sigma (what a large-N simulation sees).

Depth. The truncation error of depth k is estimated by solving depth k - 1 too: `truncation_error` is
|t_learn(k) - t_learn(k - 1)| / t_learn(k) (or, where either never learns by t1, max_t |L_k - L_{k-1}| / L(0)).
With `depth="auto"` each cell is raised from depth 1 until that estimate is <= `tol` (at most `max_depth`).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ..loss import population_loss_and_grad
from ..model import LinearRNN
from ..observables import outlier_eigenvalue
from ..targets import ExponentialSum
from ._ode import integrate
from ._result import make_result

__all__ = ["fock_compression", "solve_fock", "fock_dimension"]


def fock_dimension(depth: int) -> int:
    """d = 2 (2^(depth+1) - 1): the words of length <= depth in two copies."""
    return 2 * (2 ** (depth + 1) - 1)


def _words(depth: int) -> list[tuple[int, ...]]:
    words: list[tuple[int, ...]] = [()]
    for L in range(1, depth + 1):
        words += list(itertools.product((1, 2), repeat=L))
    return words


def fock_compression(sigma: float, depth: int) -> np.ndarray:
    """C_k = E^T c E (d x d): c = sigma (l1 + l2^*) compressed to the words of length <= depth, both copies.

    Order: copy 1 then copy 2; in each copy the vacuum first, then words by length (lexicographic)."""
    words = _words(depth)
    index = {w: i for i, w in enumerate(words)}
    n = len(words)
    C1 = np.zeros((n, n))
    for w, i in index.items():
        j = index.get((1,) + w)  # l1: prepend e1 (words longer than depth leave S for T, never to return)
        if j is not None:
            C1[j, i] += sigma
        if w and w[0] == 2:  # l2^*: remove a leading e2
            C1[index[w[1:]], i] += sigma
    C = np.zeros((2 * n, 2 * n))
    C[:n, :n] = C1
    C[n:, n:] = C1
    return C


def _initial_state(d: int) -> np.ndarray:
    theta0 = np.zeros(d * d + 2 * d)
    theta0[d * d] = 1.0  # a = Omega_1
    theta0[d * d + d + d // 2] = 1.0  # b = Omega_2
    return theta0


@functools.partial(jax.jit, static_argnames=("max_steps", "doublings"))
def _fock_flow(C1, sigma, theta0, target, eta, ts, rtol, atol, max_steps, doublings):
    """The d-dimensional flow for a batch of cells (sigma, target, eta: leading axis B); C1 = C_k at sigma 1."""
    import diffrax

    d = C1.shape[0]
    sq = jnp.sqrt(jnp.asarray(d, C1.dtype))

    def network(th, sigma):
        # u = sqrt(d) a, v = sqrt(d) b with the 1/d readout: k(tau) = b^T e^{(W - I) tau} a
        return LinearRNN(
            sigma * C1 + th[: d * d].reshape(d, d), sq * th[d * d : d * d + d], sq * th[d * d + d :]
        )

    def cell(sigma, target, eta):
        def rhs(t, th, args):
            _, g, _ = population_loss_and_grad(network(th, sigma), target, doublings=doublings)
            return -eta * jnp.concatenate([g.W.reshape(-1), sq * g.u, sq * g.v])

        ys, ok, n = integrate(
            rhs,
            theta0,
            None,
            ts,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            solver=diffrax.Dopri8(),
            pcoeff=0.0,
            icoeff=1.0,
        )
        loss = jax.vmap(
            lambda th: population_loss_and_grad(network(th, sigma), target, doublings=doublings)[0]
        )(ys)
        W = jax.vmap(lambda th: network(th, sigma).W)(ys)
        return ys, W, loss, ok, n

    return jax.vmap(cell)(sigma, target, eta)


def _solve_depth(target, sigma, eta, ts, depth, rtol, atol, max_steps, doublings):
    """Flat cells (B,) at one depth: dict of numpy arrays with leading axis B."""
    C1 = fock_compression(1.0, depth)
    d = C1.shape[0]
    f64 = jnp.float64
    ys, W, loss, ok, n = _fock_flow(
        jnp.asarray(C1, f64),
        jnp.asarray(sigma, f64),
        jnp.asarray(_initial_state(d), f64),
        jax.tree.map(lambda x: jnp.asarray(x, f64), target),
        jnp.asarray(eta, f64),
        jnp.asarray(ts, f64),
        rtol,
        atol,
        max_steps,
        doublings,
    )
    ev = np.linalg.eigvals(np.asarray(W))  # (B, T, d): d <= 126 for depth <= 5, cheap on the host
    s = np.asarray(sigma)[:, None, None]
    outside = np.where(np.abs(ev) > s * (1 + 1e-6), ev, -np.inf)
    ev = np.concatenate([outside, np.broadcast_to(s + 0j, ev.shape[:-1] + (1,))], -1)
    return dict(
        loss=np.asarray(loss), ev=ev, ok=np.asarray(ok), num_steps=np.asarray(n), theta=np.asarray(ys)
    )


def _truncation_error(ts, hi, lo, threshold):
    from ..observables import learning_time

    t_hi = learning_time(ts, hi["loss"], threshold=threshold)
    t_lo = learning_time(ts, lo["loss"], threshold=threshold)
    by_loss = np.max(np.abs(hi["loss"] - lo["loss"]), -1) / np.abs(hi["loss"][..., 0])
    both = np.isfinite(t_hi) & np.isfinite(t_lo)
    err = np.where(both, np.abs(t_hi - t_lo) / np.where(both, t_hi, 1.0), by_loss)
    return np.where(hi["ok"] & lo["ok"], err, np.nan)


def solve_fock(
    target: ExponentialSum,
    sigma: float | ArrayLike,
    ts,
    *,
    eta: float | ArrayLike = 1.0,
    depth: int | str = 2,
    tol: float = 1e-2,
    max_depth: int = 5,
    rtol=1e-8,
    atol=1e-10,
    max_steps=100_000,
    threshold=1e-2,
    doublings=24,
):
    """N -> inf finite-sigma theory over a grid of cells; returns a `TheoryResult`.

    `sigma`, `eta` and the target's leading axes broadcast to the grid's batch shape; all cells are solved
    in one vmapped call per depth. `depth`: an integer >= 0, or "auto" (per cell, the smallest depth in
    1..`max_depth` whose `truncation_error` is <= `tol`). Extras: `depth` (per cell), `truncation_error`
    (per cell, depth k against k - 1; NaN at depth 0), `dim` (d per cell), `num_steps`, `theta`.
    """
    kind = target.kind  # the flow does not depend on it: one compiled program serves every kind
    batch = np.broadcast_shapes(np.shape(target.r_re)[:-1], np.shape(eta), np.shape(sigma))
    B = int(np.prod(batch, dtype=int))
    J = np.shape(target.r_re)[-1]
    with jax.enable_x64(True):  # float64 whatever the global flag says (as `solve`)
        flat = ExponentialSum(
            *(
                jnp.asarray(np.broadcast_to(np.asarray(x, np.float64), tuple(batch) + (J,)).reshape(B, J))
                for x in (target.r_re, target.r_im, target.s_re, target.s_im)
            ),
            kind="sum",
        )
        return _solve_fock(
            flat,
            batch,
            kind,
            sigma,
            eta,
            ts,
            depth,
            tol,
            max_depth,
            rtol,
            atol,
            max_steps,
            threshold,
            doublings,
        )


def _solve_fock(
    flat, batch, kind, sigma, eta, ts, depth, tol, max_depth, rtol, atol, max_steps, threshold, doublings
):
    B = flat.r_re.shape[0]
    sig = np.broadcast_to(np.asarray(sigma, np.float64), batch).reshape(B)
    e = np.broadcast_to(np.asarray(eta, np.float64), batch).reshape(B)
    args = (ts, rtol, atol, max_steps, doublings)

    def at(depth, idx):
        # pad the batch to a power of two (repeating cell idx[0]) so "auto" compiles O(log B) programs per depth
        n = len(idx)
        padded = np.concatenate([idx, np.full((1 << (n - 1).bit_length()) - n, idx[0])]) if n < B else idx
        sub = jax.tree.map(lambda x: x[padded], flat)
        out = _solve_depth(sub, sig[padded], e[padded], ts, depth, *args[1:])
        return {name: v[:n] for name, v in out.items()}

    everyone = np.arange(B)
    if depth == "auto":
        T = len(ts)
        width = fock_dimension(max_depth) + 1  # eigenvalues of the deepest model, plus the bulk edge
        final = dict(
            loss=np.full((B, T), np.nan),
            ev=np.full((B, T, width), -np.inf + 0j),
            ok=np.zeros(B, bool),
            num_steps=np.zeros(B, int),
        )
        depths = np.full(B, -1)
        errors = np.full(B, np.nan)
        lo = at(0, everyone)
        pending = everyone
        for k in range(1, max_depth + 1):
            hi = at(k, pending)
            err = _truncation_error(ts, hi, lo, threshold)
            accept = (err <= tol) | (k == max_depth) | ~np.isfinite(err)
            cells = pending[accept]
            for name in ("loss", "ok", "num_steps"):
                final[name][cells] = hi[name][accept]
            ev = hi["ev"][accept]
            final["ev"][cells, :, : ev.shape[-1]] = ev
            depths[pending[accept]] = k
            errors[pending[accept]] = err[accept]
            keep = ~accept
            pending = pending[keep]
            if not len(pending):
                break
            lo = {name: v[keep] for name, v in hi.items()}
        out, dims = final, np.vectorize(fock_dimension)(depths)
    else:
        assert isinstance(depth, int)
        out = at(depth, everyone)
        depths = np.full(B, depth)
        dims = np.full(B, fock_dimension(depth))
        if depth >= 1:
            errors = _truncation_error(ts, out, at(depth - 1, everyone), threshold)
        else:
            errors = np.full(B, np.nan)
    result = dict(
        loss=out["loss"],
        outlier=outlier_eigenvalue(out["ev"], kind),
        ok=out["ok"],
        num_steps=out["num_steps"],
        depth=depths,
        truncation_error=errors,
        dim=dims,
    )
    if depth != "auto":
        result["theta"] = out["theta"]  # ragged across depths under "auto"
    result = {k: np.asarray(v).reshape(tuple(batch) + np.shape(v)[1:]) for k, v in result.items()}
    return make_result(ts, result, "fock", threshold)
