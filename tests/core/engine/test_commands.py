"""CommandLog.propose declares each command's result type by overloads: they must agree with
the state machine method that applies the command (what a replay and `commit` call)."""

from __future__ import annotations

import typing

from pyggy.core.engine.commands import CommandLog
from pyggy.core.metadata import machine
from pyggy.core.metadata.commands import COMMAND_TYPES, MetadataCommand
from pyggy.core.metadata.machine import MetadataStateMachine


def _command_type(cmd: type) -> str:
    return typing.get_args(typing.get_type_hints(cmd)["type"])[0]


def test_every_command_has_one_propose_overload_with_the_state_machines_result() -> None:
    overloads = typing.get_overloads(CommandLog.propose)
    assert overloads, "propose has no overloads"
    seen: dict[str, object] = {}
    for overload in overloads:
        hints = typing.get_type_hints(overload)
        for cmd in typing.get_args(hints["cmd"]) or (hints["cmd"],):
            name = _command_type(cmd)
            assert name not in seen, f"{name} is in two overloads"
            seen[name] = hints["return"]
            applied = typing.get_type_hints(getattr(MetadataStateMachine, name),
                                            vars(machine))["return"]
            assert hints["return"] == applied, f"{name}: propose says {hints['return']}, " \
                                               f"the state machine returns {applied}"
    assert set(seen) == COMMAND_TYPES == {_command_type(c) for c in typing.get_args(
        MetadataCommand)}
