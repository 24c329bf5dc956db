"""compose.yaml's `cluster` profile: three pyggy services whose roster (deploy/cluster.toml),
addresses, ports, replica ids and volumes agree, and whose config loads with pyggy's own loader
for each replica id. No Docker engine is needed: the file is parsed, not run."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from pyggy.config import NON_KEY_ENV, ServerConfig, env_settings, load_config, split_address

ROOT = Path(__file__).resolve().parents[2]
NODES = ("pyggy-node0", "pyggy-node1", "pyggy-node2")
CONFIG_IN_CONTAINER = "/etc/pyggy/cluster.toml"
DATA_IN_CONTAINER = "/app/local_data"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _image_env() -> dict[str, str]:
    """The Dockerfile's runtime `ENV` (the last stage's): listen addresses and data path."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def _ports(service: dict) -> dict[int, int]:
    """container port -> host port of a service's `ports` list ("host:container")."""
    out = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")
        out[int(container)] = int(host)
    return out


def _node_config(service: dict) -> ServerConfig:
    env = {**_image_env(), **{k: str(v) for k, v in service["environment"].items()}}
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    host_file = mounts[env["IGGY_CONFIG_PATH"]]
    assert host_file.startswith("./")
    env["IGGY_CONFIG_PATH"] = str(ROOT / host_file)
    return load_config(None, env)


def test_cluster_profile_has_three_nodes_and_only_them() -> None:
    services = _compose()["services"]
    in_profile = sorted(n for n, s in services.items() if "cluster" in s.get("profiles", []))
    assert in_profile == list(NODES)
    assert "profiles" not in services["pyggy"]  # `docker compose up` is unchanged


@pytest.mark.parametrize("replica", range(3))
def test_each_node_loads_its_roster_entry(replica: int) -> None:
    compose = _compose()
    service = compose["services"][NODES[replica]]
    env = service["environment"]
    assert set(env) <= set(env_settings()) | NON_KEY_ENV
    assert env["IGGY_CONFIG_PATH"] == CONFIG_IN_CONTAINER
    assert f"./deploy/cluster.toml:{CONFIG_IN_CONTAINER}:ro" in service["volumes"]

    config = _node_config(service)  # validate() ran: roster rules, secret length, ...
    cluster = config.cluster
    assert cluster.enabled and cluster.replica_id == replica
    assert cluster.auth.enabled and len(cluster.auth.shared_secret) >= 32
    me = cluster.node()
    # the container's fixed address is its roster ip (the replica bus binds it)
    assert service["networks"]["pyggy-cluster"]["ipv4_address"] == me.ip
    # the doors listen on the roster's ports, and each is published on the host
    tcp_port = split_address(config.tcp.address)[1]
    kafka_port = split_address(config.kafka.address)[1]
    http_port = split_address(config.http.address)[1]
    assert config.http.enabled
    assert (me.ports.tcp, me.ports.kafka, me.ports.http) == (tcp_port, kafka_port, http_port)
    published = _ports(service)
    assert {tcp_port, kafka_port, http_port} <= set(published)
    assert me.ports.tcp_replica not in published  # the replica port stays on the network
    # Metadata announces this broker as the others do: roster ip and Kafka port
    assert config.kafka.advertised() == (me.ip, me.ports.kafka)
    # its own data volume, declared at the top level
    data = [v for v in service["volumes"] if v.endswith(f":{DATA_IN_CONTAINER}")]
    assert data == [f"pyggy-node{replica}-data:{DATA_IN_CONTAINER}"]
    assert f"pyggy-node{replica}-data" in compose["volumes"]


def test_nodes_agree_and_do_not_collide() -> None:
    compose = _compose()
    services = compose["services"]
    configs = [_node_config(services[n]) for n in NODES]
    rosters = [[(x.name, x.ip, x.replica_id, x.ports) for x in c.cluster.nodes] for c in configs]
    assert rosters[0] == rosters[1] == rosters[2] and len(rosters[0]) == 3
    assert len({c.cluster.auth.shared_secret for c in configs}) == 1
    assert len({c.cluster.name for c in configs}) == 1
    # every address inside the network's subnet, all distinct
    subnet = compose["networks"]["pyggy-cluster"]["ipam"]["config"][0]["subnet"]
    net = ipaddress.ip_network(subnet)
    ips = [ipaddress.ip_address(n.ip) for n in configs[0].cluster.nodes]
    assert all(ip in net for ip in ips) and len(set(ips)) == 3
    # no host port published twice by any service of the file (single node and cluster)
    host_ports = [h for s in services.values() for h in _ports(s).values()]
    assert len(host_ports) == len(set(host_ports))
    # no two nodes share a data volume
    data = {v.split(":")[0] for n in NODES for v in services[n]["volumes"]
            if v.endswith(DATA_IN_CONTAINER)}
    assert len(data) == 3


def test_image_builds_the_c_walks() -> None:
    """Read, not built (no Docker engine here): the builder installs gcc and the xxHash
    headers and refuses an image without the extension; the runtime has the shared library."""
    text = (ROOT / "Dockerfile").read_text()
    _, build, runtime = text.split("\nFROM ")
    assert "libxxhash-dev" in build and "gcc" in build
    assert "IMPLEMENTATION == 'c'" in build and "IMPLEMENTATION == 'c'" in runtime
    assert "libxxhash0" in runtime and "libxxhash-dev" not in runtime
    assert "COPY --from=build /wheels" in runtime
    assert "**/*.so" in (ROOT / ".dockerignore").read_text().split()  # no host-built module
