"""Reduced theories of the mean-field gradient flow, as diffrax solvers (docs/theory.md).

- sigma = 0: the exact 8-ODE (M, a, b) with the closed-form two-pole loss, and its symmetric 5-ODE.
- sigma > 0, finite N: the block-Krylov (Galerkin) reduction of depth k around a given W0, u0, v0.
- sigma > 0, N -> inf: the deterministic Fock-space limit of the block-Krylov reduction.

`solve(target, theory, t1=..., ...)` with `theory` = `Sigma0()`, `Krylov(depth)` or `Fock(depth)` (or inferred
from sigma, network and depth) returns the trainer's observables (`t`, `loss`, `outlier`, `t_learn`, `ok`), in
float64 whatever the global x64 flag. sigma = 0 grids run through a batched Rodas4 work queue (`_rosenbrock`).
"""

from ._reference import reference_flow as reference_flow
from ._sigma0 import (
    MIN_GRID_CELLS as MIN_GRID_CELLS,
    eight_charge as eight_charge,
    eight_loss as eight_loss,
    eight_state_from_network as eight_state_from_network,
    eight_state_infinite as eight_state_infinite,
    five_charge as five_charge,
    five_loss as five_loss,
    five_state_from_eight as five_state_from_eight,
    solve_eight as solve_eight,
    solve_five as solve_five,
    solve_sigma0_grid as solve_sigma0_grid,
)
from ._result import TheoryResult as TheoryResult
from ._solve import (
    Fock as Fock,
    Krylov as Krylov,
    Sigma0 as Sigma0,
    solve as solve,
    theory_minus_simulation as theory_minus_simulation,
)
from ._twopole import (
    two_pole_eigenvalues as two_pole_eigenvalues,
    two_pole_loss as two_pole_loss,
    two_pole_residues as two_pole_residues,
)
