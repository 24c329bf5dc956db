"""Kafka's own CLI tools (4.1.1, from the Maven jars) against pyggy, as in Kafka's quick start:
create a topic, describe it, console-produce, console-consume from the beginning with a group,
describe the group, producer and consumer perf tests; kafka-transactions.sh list, describe and
describe-producers. The same steps run against the real broker too (parameter `broker`), which
keeps the expected outputs honest.

Normalised: the TopicCommand lines carry a topic id (uuid) and leader/replica broker ids (1 on
our Kafka, pyggy's own id), and the group description a consumer id / host / client id: those
columns are not compared.
"""

from __future__ import annotations

import re
import uuid

import pytest

from interop_tests.kafka_broker.broker import KafkaCli

BROKERS = ["kafka", "pyggy"]
TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"  # kafka-transactions.sh
LINES = ["first event", "second event", "third event: with a colon", "fourth event"]


def _no_errors(result) -> None:
    bad = [line for line in result.stderr.splitlines()
           if " ERROR " in line or "Exception" in line]  # fmt: skip
    assert not bad, "tool logged errors:\n" + "\n".join(bad[:20])


@pytest.mark.parametrize("broker", BROKERS)
def test_quick_start(broker: str, brokers: dict[str, str], kafka_cli: KafkaCli) -> None:
    bootstrap = brokers[broker]
    topic = f"quickstart-events-{uuid.uuid4().hex[:8]}"
    group = f"quickstart-group-{uuid.uuid4().hex[:8]}"

    created = kafka_cli.topics(bootstrap, "--create", "--topic", topic, "--partitions", 3,
                               "--replication-factor", 1)  # fmt: skip
    assert f"Created topic {topic}." in created.stdout
    _no_errors(created)

    listed = kafka_cli.topics(bootstrap, "--list")
    assert topic in listed.stdout.split()

    described = kafka_cli.topics(bootstrap, "--describe", "--topic", topic).stdout
    summary = next(line for line in described.splitlines() if "PartitionCount" in line)
    assert re.search(r"PartitionCount:\s*3\s", summary), summary
    assert re.search(r"ReplicationFactor:\s*1\s", summary), summary
    partitions = sorted(int(m) for m in re.findall(r"Partition:\s*(\d+)\s", described))
    assert partitions == [0, 1, 2], described

    produced = kafka_cli.console_produce(bootstrap, topic, LINES)
    _no_errors(produced)

    consumed = kafka_cli.console_consume(
        bootstrap, topic, "--from-beginning", "--group", group,
        "--max-messages", len(LINES), "--timeout-ms", 30000,
    )  # fmt: skip
    got = [line for line in consumed.stdout.splitlines() if line]
    assert sorted(got) == sorted(LINES), consumed.stdout + consumed.stderr
    assert f"Processed a total of {len(LINES)} messages" in consumed.stderr

    groups = kafka_cli.consumer_groups(bootstrap, "--list")
    assert group in groups.stdout.split()
    described_run = kafka_cli.consumer_groups(bootstrap, "--describe", "--group", group)
    described = described_run.stdout
    rows = _group_rows(described, topic)
    assert sorted(r["PARTITION"] for r in rows) == [0, 1, 2], described
    assert sum(r["CURRENT-OFFSET"] for r in rows) == len(LINES), described
    assert sum(r["LOG-END-OFFSET"] for r in rows) == len(LINES), described
    assert all(r["LAG"] == 0 for r in rows), described
    # the console consumer has left: the tool says so (on stderr) and shows no consumer ids
    assert "has no active members" in described_run.stderr, described_run.stderr
    assert all(r.get("CONSUMER-ID") == "-" for r in rows), described

    offsets = kafka_cli.consumer_groups(bootstrap, "--describe", "--group", group, "--offsets")
    assert len(_group_rows(offsets.stdout, topic)) == 3, offsets.stdout


def _group_rows(text: str, topic: str) -> list[dict]:
    """Rows of `kafka-consumer-groups --describe` for `topic`, numbers as ints ('-' → None)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = next(cols for cols in lines if cols[:2] == ["GROUP", "TOPIC"])
    rows = []
    for cols in lines:
        if len(cols) >= 2 and cols[1] == topic:
            row = dict(zip(header, cols, strict=False))
            for key in ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"):
                if key in row:
                    row[key] = None if row[key] == "-" else int(row[key])
            rows.append(row)
    return rows


@pytest.mark.parametrize("broker", BROKERS)
def test_perf_tools(broker: str, brokers: dict[str, str], kafka_cli: KafkaCli) -> None:
    """kafka-producer-perf-test (default producer: idempotent, acks=all) then
    kafka-consumer-perf-test (a group consumer) on a small record count."""
    bootstrap = brokers[broker]
    topic = f"perf-{uuid.uuid4().hex[:8]}"
    records = 2000
    produced = kafka_cli.producer_perf(bootstrap, topic, records, 100)
    _no_errors(produced)
    final = produced.stdout.strip().splitlines()[-1]
    assert re.match(rf"{records} records sent, ", final), produced.stdout

    consumed = kafka_cli.consumer_perf(bootstrap, topic, records, "--timeout", 30000)
    _no_errors(consumed)
    lines = [line for line in consumed.stdout.splitlines() if line.strip()]
    header = [c.strip() for c in lines[0].split(",")]
    data = dict(zip(header, (c.strip() for c in lines[-1].split(",")), strict=False))
    assert int(data["data.consumed.in.nMsg"]) == records, consumed.stdout
    assert float(data["data.consumed.in.MB"]) > 0


@pytest.mark.parametrize("broker", BROKERS)
def test_kafka_transactions_list_and_describe(broker: str, brokers: dict[str, str],
                                              kafka_cli: KafkaCli) -> None:
    """kafka-transactions.sh list / describe while a confluent-kafka transaction is open, then
    after it committed: the same columns and states on both brokers."""
    from confluent_kafka import Producer

    bootstrap = brokers[broker]
    topic = f"txn-cli-{uuid.uuid4().hex[:8]}"
    tid = f"txn-cli-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(topic, b"x", partition=0)
    assert p.flush(30) == 0

    def rows(*args: str) -> list[list[str]]:
        out = kafka_cli.run(TRANSACTIONS_COMMAND, "--bootstrap-server", bootstrap, *args)
        _no_errors(out)
        return [line.split() for line in out.stdout.splitlines() if line.strip()]

    listed = rows("list")
    assert listed[0] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    mine = [r for r in listed[1:] if r[0] == tid]
    assert len(mine) == 1 and mine[0][3] == "Ongoing", listed
    described = rows("describe", "--transactional-id", tid)
    head = dict(zip(described[0], described[1], strict=True))
    assert (head["TransactionState"], head["ProducerEpoch"]) == ("Ongoing", "0")
    assert head["TopicPartitions"] == f"{topic}-0"
    # describe-producers (DescribeProducers, KIP-664): the open transaction's producer on
    # the partition, its last sequence and where its transaction starts
    producers = rows("describe-producers", "--topic", topic, "--partition", "0")
    by_id = {r[0]: dict(zip(producers[0], r, strict=True)) for r in producers[1:]}
    assert set(by_id) == {mine[0][2]}, producers
    row = by_id[mine[0][2]]
    assert (row["ProducerEpoch"], row["LastSequence"],
            row["CurrentTransactionStartOffset"]) == ("0", "0", "0"), producers
    p.commit_transaction(60)
    described = rows("describe", "--transactional-id", tid)
    head = dict(zip(described[0], described[1], strict=False))
    assert head["TransactionState"] == "CompleteCommit", described
