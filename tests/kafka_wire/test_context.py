"""`KafkaServer.coordinator`: set, or built by its factory at its first use, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyggy.core.engine import LogEngine
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    yield KafkaServer(engine)
    engine.close()


def test_the_coordinator_is_built_at_its_first_use_and_only_once(kafka: KafkaServer) -> None:
    built: list[GroupCoordinator] = []

    def factory() -> GroupCoordinator:
        built.append(GroupCoordinator(kafka.engine.clock, MemoryOffsetStore()))
        return built[-1]

    kafka.coordinator_factory = factory
    assert kafka.built_coordinator is None and not built  # nothing built yet
    first = kafka.coordinator
    assert built == [first] and kafka.coordinator is first and kafka.built_coordinator is first


def test_a_coordinator_set_replaces_the_factory(kafka: KafkaServer) -> None:
    assert kafka.coordinator is None  # no factory, none set: a server without groups
    kafka.coordinator_factory = lambda: pytest.fail("not called")
    mine = GroupCoordinator(kafka.engine.clock, MemoryOffsetStore())
    kafka.coordinator = mine
    assert kafka.coordinator is mine
    kafka.coordinator = None
    assert kafka.coordinator is None
