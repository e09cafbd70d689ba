"""Reference: the full N-dimensional gradient flow, integrated with diffrax (the core engine's flow).

    dW/dt = -eta dL/dW,   du/dt = -eta N dL/du,   dv/dt = -eta N dL/dv      (mean-field rates)

with the exact adjoint gradients of `jaxrnn.loss.population_loss_and_grad`. Used to validate the reduced
theories at small N; it costs O(N^3) per right-hand side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..loss import population_loss_and_grad
from ..model import LinearRNN
from ..observables import outlier_eigenvalue
from ..targets import ExponentialSum
from ._ode import integrate_gradient_flow

__all__ = ["reference_flow"]


def _flow(network, target, eta, ts, rtol, atol, max_steps, doublings):
    N = network.N

    def rhs(t, y, args):
        W, u, v = y
        _, g, _ = population_loss_and_grad(LinearRNN(W, u, v), target, doublings=doublings)
        return (-eta * g.W, -eta * N * g.u, -eta * N * g.v)

    ys, ok, n = integrate_gradient_flow(
        rhs, (network.W, network.u, network.v), ts, rtol=rtol, atol=atol, max_steps=max_steps
    )
    W, u, v = ys
    loss = jax.vmap(
        lambda W, u, v: population_loss_and_grad(LinearRNN(W, u, v), target, doublings=doublings)[0]
    )(W, u, v)
    return W, u, v, loss, ok, n


_flow_jit = jax.jit(_flow, static_argnames=("max_steps", "doublings"))


def reference_flow(
    network: LinearRNN,
    target: ExponentialSum,
    ts,
    *,
    eta=1.0,
    rtol=1e-10,
    atol=1e-10,
    max_steps=200_000,
    doublings=24,
):
    """Full N-dimensional mean-field gradient flow of one network, saved at `ts` (Dopri8 + PID).

    **Returns:** dict of numpy arrays: `t`, `W` (T, N, N), `u`, `v`, `loss` (T,), `outlier` (T,) complex
    (host `numpy.linalg.eigvals` of W), `t_learn`, `ok`, `num_steps`.
    """
    from ..observables import learning_time

    ts = jnp.asarray(ts)
    # the flow does not depend on the target's kind (a static field): drop it so one program serves all kinds
    kindless = ExponentialSum(target.r_re, target.r_im, target.s_re, target.s_im, kind="sum")
    W, u, v, loss, ok, n = _flow_jit(network, kindless, eta, ts, rtol, atol, max_steps, doublings)
    W, loss = np.asarray(W), np.asarray(loss)
    eigs = np.linalg.eigvals(W)
    out = outlier_eigenvalue(eigs, target.kind)
    return dict(
        t=np.asarray(ts),
        W=W,
        u=np.asarray(u),
        v=np.asarray(v),
        loss=loss,
        outlier=out,
        t_learn=learning_time(np.asarray(ts), loss),
        ok=bool(ok),
        num_steps=int(n),
    )
