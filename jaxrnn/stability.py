"""Stability of the explicit gradient-flow steps: the one definition the trainer and the sweep check share.

A fixed step h of the flow theta' = -eta R grad L is stable while h eta lambda_max stays inside the step's
real stability interval [-limit, 0] (lambda_max: the top eigenvalue of R^{1/2} H R^{1/2}, docs/concepts.md
§4): RK4's 1 + z + z^2/2 + z^3/6 + z^4/24 = -1 at z = -2.7853, Euler's |1 + z| <= 1 for z >= -2. Near the
learned state of a leaky integrator with decay c that eigenvalue is about 0.25 / c^3. No JAX here: the
sweep config check imports it without starting JAX.
"""

from __future__ import annotations

__all__ = ["RK4_LIMIT", "EULER_LIMIT", "STEP_LIMITS", "learned_curvature"]

RK4_LIMIT, EULER_LIMIT = 2.7853, 2.0
STEP_LIMITS = {"rk4": RK4_LIMIT, "euler": EULER_LIMIT}


def learned_curvature(c: float) -> float:
    """The flow's stiffest rate near the learned leaky integrator, per unit eta: ~0.25 / c^3."""
    return 0.25 / c**3
