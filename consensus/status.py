"""Replica status values and the kinds of actions a replica returns."""

NORMAL, VIEW_CHANGE, RECOVERING = "normal", "view_change", "recovering"
SEND, REPLY, COMMITTED = 0, 1, 2


class Divergence(AssertionError):
    """Logs that a correct cluster can never produce (a safety bug, not a fault)."""
