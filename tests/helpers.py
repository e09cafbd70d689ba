"""Shared test helpers: independent (scipy) references and tree comparisons."""

import jax
import numpy as np
import scipy.integrate as si
import scipy.linalg as sl


def tree_max_rel_err(a, b):
    """max over leaves of |a - b|_max / |b|_max."""
    errs = [
        np.max(np.abs(np.asarray(x) - np.asarray(y))) / np.max(np.abs(np.asarray(y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ]
    return max(errs)


def impulse_response_np(net, tau):
    W, u, v = (np.asarray(x, dtype=float) for x in (net.W, net.u, net.v))
    A = W - np.eye(len(u))
    return np.array([net.readout_scale * v @ sl.expm(A * t) @ u for t in np.atleast_1d(tau)])


def quadrature_loss(net, target, horizon=None):
    """1/2 int_0^inf (k - k*)^2 by adaptive quadrature on the eigen-decomposed response, or the
    finite-horizon 1/(2T) int_0^T (T - tau)(k - k*)^2."""
    W, u, v = (np.asarray(x, dtype=float) for x in (net.W, net.u, net.v))
    A = W - np.eye(len(u))
    lam, V = np.linalg.eig(A)
    coef = (v @ V) * np.linalg.solve(V, u) * net.readout_scale
    k = lambda t: np.real(np.sum(coef * np.exp(lam * t)))
    ks = lambda t: float(target(t))
    if horizon is None:
        f = lambda t: (k(t) - ks(t)) ** 2
        return 0.5 * si.quad(f, 0, np.inf, limit=2000, epsabs=1e-14, epsrel=1e-13)[0]
    f = lambda t: (horizon - t) * (k(t) - ks(t)) ** 2
    return 0.5 * si.quad(f, 0, horizon, limit=2000, epsabs=1e-14, epsrel=1e-13)[0] / horizon
