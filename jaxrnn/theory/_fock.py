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
from ._ode import integrate_gradient_flow
from ._result import make_result

__all__ = ["fock_compression", "solve_fock", "fock_dimension", "smith_doublings"]


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


def _embed(depth: int, size: int) -> np.ndarray:
    """Indices of the depth-`depth` words inside the depth-`size` basis (size >= depth): the words of each copy
    are ordered by length, so the shorter basis is a prefix of each copy's block."""
    n, n_big = fock_dimension(depth) // 2, fock_dimension(size) // 2
    return np.concatenate([np.arange(n), n_big + np.arange(n)])


def smith_doublings(target: ExponentialSum) -> int:
    """Smith doublings for the reduced exact loss: enough for the slowest mode the flow approaches.

    The learned eigenvalue of W - I tends to -s_j (s_j = c_j +- i w_j, the target's poles), whose Cayley factor
    (shift 1) is rho = |1 - s_j| / |1 + s_j|. We ask rho_eff^(2^K) < 1e-30 with 1 - rho_eff = (1 - rho) / 4 (margin
    for transients on the way), i.e. 2^K > 4 * 69 / (1 - rho); clamped to 8..24. The Smith tail
    max|F^(2^K)| is checked at every save time, so a flow that needed more is flagged (`ok = False`)."""
    s = np.asarray(target.s_re, np.float64) + 1j * np.asarray(target.s_im, np.float64)
    rho = np.max(np.abs(1 - s) / np.abs(1 + s))
    return int(np.clip(np.ceil(np.log2(4 * 69.0 / max(1.0 - rho, 1e-12))), 8, 24))


@functools.partial(jax.jit, static_argnames=("max_steps", "doublings"))
def _fock_flow(C1, mask, sigma, theta0, target, eta, ts, rtol, atol, max_steps, doublings):
    """The d-dimensional flow for a batch of cells (sigma, target, eta: leading axis B); C1 = C_k at sigma 1.

    `mask` (0/1 over the state) restricts the flow to a shallower depth embedded in this d (C1 zero-padded):
    the padded coordinates start at 0 and never move, so the impulse response is the shallower model's, and one
    compiled program serves depth k and its truncation estimate at depth k - 1."""

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
            return -eta * mask * jnp.concatenate([g.W.reshape(-1), sq * g.u, sq * g.v])

        ys, ok, n = integrate_gradient_flow(rhs, theta0, ts, rtol=rtol, atol=atol, max_steps=max_steps)
        loss, _, tail = jax.vmap(
            lambda th: population_loss_and_grad(network(th, sigma), target, doublings=doublings)
        )(ys)
        W = jax.vmap(lambda th: network(th, sigma).W)(ys)
        # a Smith doubling that has not converged (tail not small) is a wrong loss: flag the cell
        return ys, W, loss, ok & jnp.all(tail < 1e-8), n

    return jax.vmap(cell)(sigma, target, eta)


def _solve_depth(target, sigma, eta, ts, depth, size, rtol, atol, max_steps, doublings, per_call):
    """Flat cells (B,) at `depth`, computed in the depth-`size` program, `per_call` cells per call: dict of numpy
    arrays with leading axis B (eigenvalues and theta in the depth-`size` basis)."""
    d = fock_dimension(size)
    keep = _embed(depth, size)
    C1 = np.zeros((d, d))
    C1[np.ix_(keep, keep)] = fock_compression(1.0, depth)
    inside = np.zeros(d)
    inside[keep] = 1.0
    mask = np.concatenate([np.outer(inside, inside).reshape(-1), inside, inside])
    f64 = jnp.float64
    B = len(sigma)
    pieces = []
    for start in range(0, B, per_call):
        idx = np.minimum(np.arange(start, start + per_call), B - 1)  # the last call is padded with cell B - 1
        pieces.append(
            _fock_flow(
                jnp.asarray(C1, f64),
                jnp.asarray(mask, f64),
                jnp.asarray(sigma[idx], f64),
                jnp.asarray(_initial_state(d), f64),
                jax.tree.map(lambda x, idx=idx: jnp.asarray(x[idx], f64), target),
                jnp.asarray(eta[idx], f64),
                jnp.asarray(ts, f64),
                rtol,
                atol,
                max_steps,
                doublings,
            )
        )
    ys, W, loss, ok, n = (np.concatenate([np.asarray(p[i]) for p in pieces])[:B] for i in range(5))
    ev = np.linalg.eigvals(W)  # (B, T, d): d <= 126 for depth <= 5, cheap on the host
    s = np.asarray(sigma)[:, None, None]
    # eigenvalues of the padding are 0, inside the disk: never outliers
    outside = np.where(np.abs(ev) > s * (1 + 1e-6), ev, -np.inf)
    ev = np.concatenate([outside, np.broadcast_to(s + 0j, ev.shape[:-1] + (1,))], -1)
    return dict(loss=loss, ev=ev, ok=ok, num_steps=n, theta=ys)


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
    doublings: int | None = None,
):
    """N -> inf finite-sigma theory over a grid of cells; returns a `TheoryResult`.

    `sigma`, `eta` and the target's leading axes broadcast to the grid's batch shape; all cells are solved
    in one vmapped call per depth. `depth`: an integer >= 0, or "auto" (per cell, the smallest depth in
    1..`max_depth` whose `truncation_error` is <= `tol`). Extras: `depth` (per cell), `truncation_error`
    (per cell, depth k against k - 1; NaN at depth 0), `dim` (d per cell), `num_steps`, `theta`.
    `doublings`: Smith doublings of the reduced exact loss (default: `smith_doublings(target)`).
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
        sig = np.broadcast_to(np.asarray(sigma, np.float64), batch).reshape(B)
        e = np.broadcast_to(np.asarray(eta, np.float64), batch).reshape(B)
        K = smith_doublings(flat) if doublings is None else int(doublings)
        # on CPU one cell per call (a vmapped adaptive solve steps every cell until the stiffest is done, and
        # batching small matrices buys little there); on accelerators the whole grid in one call
        one_by_one = jax.default_backend() == "cpu"

        def at(depth, idx, size=None):
            n = len(idx)
            per_call = 1 if one_by_one else 1 << (n - 1).bit_length()  # powers of two: few compiled programs
            sub = jax.tree.map(lambda x: x[idx], flat)
            size = depth if size is None else size
            return _solve_depth(sub, sig[idx], e[idx], ts, depth, size, rtol, atol, max_steps, K, per_call)

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
            lo = at(0, everyone, size=1)
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
            if depth >= 1:  # depth - 1 in the same compiled program (zero-padded): no second compilation
                errors = _truncation_error(ts, out, at(depth - 1, everyone, size=depth), threshold)
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
