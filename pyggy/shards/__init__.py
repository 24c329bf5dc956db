"""Shard processes of one server (docs/sharding.md): imported only when
`[system.sharding] shards` > 1, so a one-process server loads none of it.

- `rule` — which shard owns a partition;
- `frames` — the inter-shard frame codec (sans-I/O);
- `channel` — a Unix-socket connection carrying those frames, with request/reply matching;
- `runtime` — starting the shard processes, forwarding, metadata owned by shard 0.
"""
