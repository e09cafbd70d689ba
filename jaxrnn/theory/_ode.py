"""The one `diffeqsolve` call of the theory package (Kvaerno5 cells, Krylov/Fock flows, the reference flow):
errors as data. (The sigma = 0 grids use the batched Rodas4 of `_rosenbrock` instead.)"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["integrate", "integrate_gradient_flow"]


def integrate(
    rhs, y0, args, ts, *, rtol=1e-10, atol=1e-12, max_steps=100_000, solver=None, pcoeff=0.3, icoeff=0.4
):
    """Integrate dy/dt = rhs(t, y, args) from ts[0], saving at `ts`.

    Kvaerno5 (an L-stable ESDIRK: the flow near the optimum has one stiff direction, docs/concepts.md §4)
    with a PID step-size controller. `throw=False`: a failed cell returns NaN-padded states and
    `ok = False` instead of raising, so one bad cell does not sink a vmapped grid.

    **Returns:** `(ys, ok, num_steps)` with ys of shape (len(ts), *y0.shape).
    """
    import diffrax  # lazily: importing it costs ~0.7 s, and the sigma = 0 grids never need it

    solver = solver if solver is not None else diffrax.Kvaerno5()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff),
        max_steps=max_steps,
        throw=False,
    )
    ok = sol.result == diffrax.RESULTS.successful
    ys = sol.ys
    assert ys is not None  # SaveAt(ts=...) always saves
    return ys, ok, jnp.asarray(sol.stats["num_steps"])


def integrate_gradient_flow(rhs, y0, ts, *, rtol, atol, max_steps):
    """The Krylov, Fock and reference gradient flows: explicit Dopri8 with an integral step-size controller.

    Their right-hand side is an O(D^3) Lyapunov solve, so a Jacobian for an implicit method would cost D^2 of
    them (docs/theory.md); one choice for all three. **Returns:** `(ys, ok, num_steps)` as `integrate`."""
    import diffrax  # lazily: importing it costs ~0.7 s, and the sigma = 0 grids never need it

    return integrate(
        rhs,
        y0,
        None,
        ts,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        solver=diffrax.Dopri8(),
        pcoeff=0.0,
        icoeff=1.0,
    )
