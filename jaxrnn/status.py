"""Per-network status codes: the one definition the trainer, the theory, the store and the plots share.

A code is data beside a result, never an exception: a network whose result may be wrong is flagged
with one of these and kept, so that its batch-mates and the rest of a sweep are unaffected.
"""

from __future__ import annotations

__all__ = [
    "STATUS_NOT_RUN",
    "STATUS_OK",
    "STATUS_DIVERGED",
    "STATUS_UNSTABLE_STEP",
    "STATUS_MEANINGS",
    "flag_attrs",
]

STATUS_NOT_RUN = -1  # store fill value: the cell was never computed
STATUS_OK = 0
STATUS_DIVERGED = 1  # loss/gradient non-finite or W - I not Hurwitz: frozen at its last good parameters
STATUS_UNSTABLE_STEP = (
    2  # fixed step at/over the explicit method's stability edge: the trajectory may be wrong
)

STATUS_MEANINGS = {
    STATUS_NOT_RUN: "not_run",
    STATUS_OK: "ok",
    STATUS_DIVERGED: "diverged",
    STATUS_UNSTABLE_STEP: "unstable_step",
}


def flag_attrs() -> dict:
    """CF `flag_values` / `flag_meanings` attributes for a status variable."""
    codes = sorted(STATUS_MEANINGS)
    return {"flag_values": codes, "flag_meanings": " ".join(STATUS_MEANINGS[c] for c in codes)}
