"""Replica status values and the kinds of actions a replica returns."""

from typing import Final

NORMAL: Final = "normal"
VIEW_CHANGE: Final = "view_change"
RECOVERING: Final = "recovering"
SEND: Final = 0
REPLY: Final = 1
COMMITTED: Final = 2
FETCH_STATE: Final = 3


class Divergence(AssertionError):
    """Logs that a correct cluster can never produce (a safety bug, not a fault)."""
