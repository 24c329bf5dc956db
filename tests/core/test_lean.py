"""`pyggy.core.lean`: a lean class behaves as the `@dataclass(slots=True)` it replaces.

Each case builds the same class both ways and compares what a caller sees: the instances made
from the same arguments, their repr and equality, and the `TypeError` of a wrong call.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import types
from dataclasses import dataclass, field

import pytest
from pyggy.core.lean import lean, lean_frozen
from pyggy.core.model import GlobalPermissions, ScramCredential, Topic, TopicOptions

from pyggy.config import ServerConfig


def _pair(**fields_: object) -> tuple[type, type]:
    def body(ns: dict[str, object]) -> None:
        ns["__annotations__"] = {name: "object" for name in fields_}
        ns.update({name: value for name, value in fields_.items() if value is not None})

    a = types.new_class("Point", (), exec_body=body)
    b = types.new_class("Point", (), exec_body=body)
    return dataclass(slots=True)(a), lean(b)


CALLS = [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1, 2, 3, 4), {}),
         ((), {"y": 1}), ((), {"nope": 1}), ((1, 2, 3, 4, 5), {"nope": 1}),
         ((), {"x": 1}), ((1,), {"y": 5}), ((1,), {"x": 2}), ((), {"x": 1, "z": [9]}),
         ((), {"x": 1, "nope": 0}), ((1, 2), {"y": 3})]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_init_accepts_and_refuses_what_the_generated_one_does(args: tuple, kwargs: dict) -> None:
    reference, made = _pair(x=None, y=7, z=field(default_factory=list))
    try:
        want: object = reference(*args, **kwargs)
    except TypeError as e:
        with pytest.raises(TypeError) as got:
            made(*args, **kwargs)
        assert str(got.value) == str(e).replace("__create_fn__.<locals>.", "")
        return
    have = made(*args, **kwargs)
    assert repr(have) == repr(want)
    assert dataclasses.astuple(have) == dataclasses.astuple(want)


def test_each_instance_gets_its_own_default_factory_value() -> None:
    _, made = _pair(x=None, z=field(default_factory=list))
    a, b = made(1), made(1)
    a.z.append(1)
    assert b.z == []


def test_equality_is_by_fields_and_class_and_the_instances_are_unhashable() -> None:
    reference, made = _pair(x=None, y=2)
    assert made(1) == made(1, 2)
    assert made(1) != made(1, 3)
    assert made(1) != reference(1)  # another class, even with the same fields
    nan = float("nan")
    assert made(nan) == made(nan)  # the same object compares equal in a tuple, as generated
    with pytest.raises(TypeError):
        hash(made(1))


def test_a_field_left_out_of_repr_compare_or_init() -> None:
    reference, made = _pair(x=None, y=field(default=0, repr=False, compare=False),
                            z=field(default_factory=dict, init=False))
    assert repr(made(1, 2)) == repr(reference(1, 2)) == "Point(x=1, z={})"
    assert made(1, 2) == made(1, 3)
    assert made(1).z == {}
    with pytest.raises(TypeError):
        made(1, 2, {})


def test_the_dataclasses_interface_and_copies_see_a_dataclass() -> None:
    options = TopicOptions(segment_size=5)
    assert dataclasses.is_dataclass(options)
    assert not hasattr(options, "__dict__")  # slots, as before
    assert dataclasses.replace(options, enforce_fsync=True).segment_size == 5
    assert dataclasses.asdict(GlobalPermissions(read_streams=True))["read_streams"] is True
    topic = Topic(1, 2, "t", 3, options)
    assert pickle.loads(pickle.dumps(topic)) == topic == copy.deepcopy(topic)
    config = ServerConfig()
    assert copy.deepcopy(config) == config and repr(config).startswith("ServerConfig(")


def test_a_keyword_only_field_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="keyword-only"):
        @lean
        class KeywordOnly:
            x: int = field(kw_only=True)


def test_a_frozen_class_hashes_its_compared_fields_and_refuses_changes() -> None:
    @dataclass(frozen=True, slots=True)
    class Reference:
        x: int
        y: str = "a"
        z: int = field(default=0, compare=False)

    @lean_frozen
    class Made:
        x: int
        y: str = "a"
        z: int = field(default=0, compare=False)

    assert hash(Made(1, "b", 5)) == hash(Made(1, "b", 6)) == hash(Reference(1, "b", 7))
    assert Made(1) == Made(1, z=3) and Made(1) != Made(2)
    assert {Made(1): "one"}[Made(1, "a", 9)] == "one"
    assert repr(Made(1)) == repr(Reference(1)).replace("Reference", "Made")
    made = Made(1)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
        made.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'y'"):
        del made.y  # type: ignore[misc]
    assert dataclasses.replace(made, y="c") == Made(1, "c")
    credential = ScramCredential(b"salt", 4096, b"stored", b"server")
    for copied in (pickle.loads(pickle.dumps(credential)), copy.copy(credential),
                   copy.deepcopy(credential)):
        assert copied == credential and hash(copied) == hash(credential)


def test_post_init_runs_after_the_fields_are_set() -> None:
    @lean
    class Checked:
        x: int
        doubled: int = field(init=False)
        seen: list[int] = field(default_factory=list, init=False)

        def __post_init__(self) -> None:
            self.doubled = 2 * self.x
            self.seen.append(self.x)

    made = Checked(4)
    assert (made.doubled, made.seen) == (8, [4])
    assert repr(made).endswith(".<locals>.Checked(x=4, doubled=8, seen=[4])")


def test_the_start_paths_data_classes_generate_no_methods() -> None:
    """What the start-up pass made lean stays lean: a class turned back into a plain
    `@dataclass` compiles its methods at every start again (BENCHMARKS.md, start-up)."""
    from pyggy.core.model import Partition, Stream, User
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.native_wire.context import NativeServer
    from pyggy.native_wire.table import Command

    from pyggy.config import KafkaConfig, Setting, SystemConfig

    for cls in (ServerConfig, SystemConfig, KafkaConfig, Setting, Stream, Topic, Partition,
                User, TopicOptions, ScramCredential, NativeServer, KafkaServer, Command):
        for name in ("__init__", "__repr__", "__eq__"):
            assert getattr(cls, name).__module__ == "pyggy.core.lean", (cls, name)
