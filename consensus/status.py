"""Replica status values and the kinds of actions a replica returns."""

NORMAL, VIEW_CHANGE, RECOVERING = "normal", "view_change", "recovering"
SEND, REPLY, COMMITTED = 0, 1, 2
