"""A history checker for pyggy clusters under faults (issue 13, vsr.md §4.4).

`history` records what real clients saw (sends with their acknowledged offsets, polls,
metadata commands) and names what went wrong with the anomaly names of Jepsen's Kafka
workload (jepsen-io/jepsen `jepsen/src/jepsen/tests/kafka.clj`); `linear` checks the metadata
commands for linearizability (Wing & Gong's search, as Porcupine does it); `scenarios` drives
three pyggy processes through the faults P1–P8; `campaign` runs many seeds of them.
"""
