"""pyggy.native_client's GET_CLUSTER_METADATA decoder (the bench's roster): round trips with
the server's own encoder, and every malformed reply is a ValueError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyggy.native_wire.codec.responses import encode_cluster_metadata, encode_cluster_nodes

from pyggy.native_client import ClusterNode, parse_cluster_nodes

_names = st.text(max_size=20)
_port = st.integers(0, 65535)
_node = st.tuples(_names, st.sampled_from(["127.0.0.1", "10.0.0.7", "::1"]), _port, _port,
                  _port, _port, st.integers(0, 1), st.integers(0, 2))


@given(_names, st.lists(_node, max_size=6))
def test_round_trip(cluster: str, nodes: list) -> None:
    got = parse_cluster_nodes(encode_cluster_nodes(cluster, nodes))
    assert got == [ClusterNode(n[0], n[1], n[2], n[6]) for n in nodes]


def test_single_node_and_addresses() -> None:
    (node,) = parse_cluster_nodes(encode_cluster_metadata("c", "n", "127.0.0.1", 8090))
    assert node.address == "127.0.0.1:8090" and node.role == 0
    assert ClusterNode("n", "::1", 8090, 1).address == "[::1]:8090"


@given(st.data())
def test_truncated_or_padded_reply_is_refused(data: st.DataObject) -> None:
    body = encode_cluster_nodes("prod", data.draw(st.lists(_node, min_size=1, max_size=3)))
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(ValueError):
        parse_cluster_nodes(body[:cut])
    with pytest.raises(ValueError):
        parse_cluster_nodes(body + b"\0")


@given(st.binary(max_size=200))
def test_garbage_is_a_value_error_or_a_roster(raw: bytes) -> None:
    try:
        nodes = parse_cluster_nodes(raw)
    except ValueError:
        return
    assert all(isinstance(n, ClusterNode) for n in nodes)


def test_a_huge_count_is_refused_before_reading() -> None:
    body = encode_cluster_nodes("c", [])[:-4] + (2**32 - 1).to_bytes(4, "little")
    with pytest.raises(ValueError, match="cannot fit"):
        parse_cluster_nodes(body)
