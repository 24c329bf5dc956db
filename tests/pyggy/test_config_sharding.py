"""`[system.sharding] shards` (docs/sharding.md): the key, its environment twin, the auto
rule and what it is refused with."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyggy.config import ConfigError, _validate_sharding, load_config, shard_count, validate


def test_auto_by_default() -> None:
    c = load_config(None, {})
    assert c.system.sharding.shards == 0
    assert c.system.sharding.kafka_broker_per_shard is True
    assert load_config(None, {"IGGY_SYSTEM_SHARDING_KAFKA_BROKER_PER_SHARD": "false"}
                       ).system.sharding.kafka_broker_per_shard is False
    assert c.system.sharding.native_handoff is True
    assert load_config(None, {"IGGY_SYSTEM_SHARDING_NATIVE_HANDOFF": "false"}
                       ).system.sharding.native_handoff is False
    assert (shard_count(c, cores=2), shard_count(c, cores=64)) == (1, 64)
    assert load_config(None, {"IGGY_SYSTEM_SHARDING_SHARDS": "1"}).system.sharding.shards == 1


def test_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[system.sharding]\nshards = 3\n")
    assert load_config(str(path), {}).system.sharding.shards == 3
    c = load_config(str(path), {"IGGY_SYSTEM_SHARDING_SHARDS": "2"})  # env over file
    assert c.system.sharding.shards == 2
    validate(c)
    assert shard_count(c) == 2


@pytest.mark.parametrize(("cores", "shards"), [(1, 1), (2, 1), (3, 3), (16, 16), (1000, 256)])
def test_auto_is_one_per_core_above_two_cores(cores: int, shards: int) -> None:
    c = load_config(None, {"IGGY_SYSTEM_SHARDING_SHARDS": "0"})
    validate(c)
    assert shard_count(c, cores=cores) == shards


@pytest.mark.parametrize("value", ["-1", "257"])
def test_out_of_range(value: str) -> None:
    with pytest.raises(ConfigError, match="system.sharding.shards"):
        validate(load_config(None, {"IGGY_SYSTEM_SHARDING_SHARDS": value}))


def test_refused_with_the_archiver_and_auto_is_one_with_it_or_a_cluster(tmp_path: Path) -> None:
    env = {"IGGY_SYSTEM_SHARDING_SHARDS": "2",
           "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
           "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(tmp_path)}
    with pytest.raises(ConfigError, match="archiver"):
        validate(load_config(None, env))
    c = load_config(None, {"IGGY_SYSTEM_SHARDING_SHARDS": "0"})
    c.cluster.enabled = True
    assert shard_count(c, cores=8) == 1
    # ... and with the archiver: auto is one shard, not a refusal
    c = load_config(None, {k: v for k, v in env.items() if "SHARDS" not in k})
    validate(c)
    assert shard_count(c, cores=8) == 1


def test_refused_with_a_cluster() -> None:
    c = load_config(None, {"IGGY_SYSTEM_SHARDING_SHARDS": "2"})
    c.cluster.enabled = True
    with pytest.raises(ConfigError, match="cluster"):
        _validate_sharding(c)  # validate() would first want a whole roster
