"""pyggy as one replica of a cluster: the consensus core (`pyggy.consensus`) on the network.

Imported only when `[cluster] enabled` (a single node loads nothing of it). It may use core,
consensus and transport, never a door; the doors see the cluster only through the narrow query
service the engine hands out (`engine.cluster`, core/engine/cluster.py). See docs/cluster.md.

| module | what it holds |
|---|---|
| `roster.py` | the roster, group ids, the cluster id, consensus options from `[cluster]` |
| `storage.py` | file-backed consensus `Storage`: zones as files, writes completed on a thread |
| `handshake.py` | the replica PSK handshake (HMAC-SHA256 challenge-response), sans I/O |
| `bus.py` | the replica bus: one connection per pair, bounded per-peer queues, reconnects |
| `node.py` | the node runtime: one `Replica` per group, the ticker, actions, `submit` |
| `partition_sm.py`, `metadata_sm.py` | the state machines the groups replicate |
"""
