"""Viewstamped Replication for pyggy, sans I/O: a replica of one group (the metadata plane or one
partition), its journal, superblock and client table, over injected storage, clock and
randomness. `pyggy.consensus.sim` drives whole clusters of them in a deterministic simulator.

Imports only the standard library and xxhash: no asyncio, sockets, threads, core or doors.
"""
