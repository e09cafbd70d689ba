"""Sweep engine: a TOML config in, a resumable zarr store and phase diagrams out (docs/sweep.md).

config -> `load_spec` (validated, frozen `SweepSpec`) -> `plan_sweep` (groups by static shape,
chunks to a memory budget) -> `run_sweep` (populations trained sharded over local devices, written
cell by cell into the store with a done mask) -> `jaxrnn.plots`.
"""

from ._grid import Plan as Plan, explain_text as explain_text, plan_sweep as plan_sweep
from ._runner import RunSummary as RunSummary, run_sweep as run_sweep, theory_infinite as theory_infinite
from ._spec import (
    AXES as AXES,
    ConfigError as ConfigError,
    ConfigIssue as ConfigIssue,
    SweepSpec as SweepSpec,
    load_spec as load_spec,
    spec_from_dict as spec_from_dict,
)
from ._store import StoreMismatch as StoreMismatch, open_dataset as open_dataset
