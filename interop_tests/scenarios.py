"""Differential scenarios: each one runs against a bootstrap address with one real client and
returns a plain, *normalised* value (dicts, lists, ints, strings, bytes) that must be equal for
real Apache Kafka and for pyggy.

What is normalised, and why (Kafka's answer is implementation-specific there):
- broker ids, cluster ids, hosts and ports: Kafka picks node id 1 in our server.properties,
  pyggy its own; only "there is exactly one broker and it leads every partition" is kept;
- member ids (`<client.id>-<uuid>` on Kafka, pyggy's own format): replaced by their role
  (leader / follower) or by their client id;
- throttle times, session timeouts echoed back, log-append timestamps: not kept;
- error messages (free text): not kept, the numeric error code is;
- topic ids (uuids) and config sources / synonyms / documentation: not kept;
- the API versions each client picked: not kept (pyggy advertises lower maxima than Kafka 4.1,
  e.g. Fetch 12 vs 17; the test compares what the application sees).

Topic names never contain '.': on pyggy "a.b" means topic b of Iggy stream a (docs).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

PARTITIONS = 3  # = AUTO_CREATE_PARTITIONS of both brokers
N_RECORDS = 30
BASE_TS = 1_700_000_000_000  # explicit CreateTime timestamps, ms
BIG = 2 * 1024 * 1024  # > Kafka's default message.max.bytes (1048588)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def records() -> list[dict[str, Any]]:
    """The workload: explicit partition (i % 3), keys (some null), values (some null/empty,
    binary), headers (none, repeated keys, empty values), explicit timestamps."""
    out = []
    for i in range(N_RECORDS):
        headers = []
        if i % 3:
            headers.append(("seq", b"%d" % i))
        if i % 4 == 0:
            headers += [("rep", b"a"), ("rep", b"b"), ("empty", b"")]
        if i % 5 == 0:
            headers.append(("bin", bytes([0, 255, i])))
        out.append(
            {
                "partition": i % PARTITIONS,
                "key": None if i % 7 == 0 else b"k%d" % i,
                "value": None if i % 11 == 5
                else b"" if i % 13 == 0
                else b"v%d\x00\xff" % i * (i % 5 + 1),
                "headers": headers,
                "timestamp": BASE_TS + i * 1000,
            }
        )
    return out


def error_name(code: int) -> str:
    import kafka.errors as Errors

    return f"{code} {Errors.for_code(code).__name__}" if code else "0 NoError"


# --- kafka-python helpers ------------------------------------------------------------------


class KpRaw:
    """kafka-python 3's admin client, plus raw requests through its connection manager (for
    the error-code scenarios, where the high-level API would hide the broker's answer)."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient

        self.admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="interop-kp-raw", request_timeout_ms=15000
        )

    def call(self, request, node_id: int | None = None):
        manager = self.admin._manager

        async def send():
            return await manager.send(request, node_id=node_id)

        return manager.run(send)

    def coordinator(self, group: str) -> int:
        return self.admin._manager.run(self.admin._find_coordinator_id, group)

    def close(self) -> None:
        self.admin.close()

    def __enter__(self) -> KpRaw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kp_producer(bootstrap: str, **kw):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, client_id="interop-kp", acks="all", **kw)


def _kp_consume_all(bootstrap: str, topic: str, expected: int, **kw) -> list:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="interop-kp", enable_auto_commit=False,
        auto_offset_reset="earliest", **kw,
    )  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        got: list = []
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        return got
    finally:
        consumer.close()


def _norm_headers(headers) -> list[tuple[str, bytes | None]]:
    return [
        (k if isinstance(k, str) else k.decode(), None if v is None else bytes(v))
        for k, v in headers or ()
    ]


# --- scenario: produce / consume round trip ------------------------------------------------


def produce_consume_kafka_python(bootstrap: str) -> dict:
    from kafka import KafkaConsumer, TopicPartition

    topic = unique("pc-kp")
    producer = _kp_producer(bootstrap)
    try:
        futures = [
            producer.send(topic, key=r["key"], value=r["value"], headers=r["headers"],
                          partition=r["partition"], timestamp_ms=r["timestamp"])
            for r in records()
        ]  # fmt: skip
        producer.flush(30)
        acks = [(m.partition, m.offset, m.timestamp) for m in (f.get(30) for f in futures)]
    finally:
        producer.close(10)
    got = _kp_consume_all(bootstrap, topic, N_RECORDS)
    consumed = sorted(
        (m.partition, m.offset, m.key, m.value, _norm_headers(m.headers), m.timestamp_type,
         m.timestamp)
        for m in got
    )  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="interop-kp")
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        beginning = {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()}
        end = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
        # ListOffsets by timestamp: the first record at or after each probe time
        probes = {tp: BASE_TS + 14_500 for tp in tps}
        by_time = {
            tp.partition: (o.offset, o.timestamp) if o else None
            for tp, o in consumer.offsets_for_times(probes).items()
        }
        late = {tp: BASE_TS + 10**9 for tp in tps}
        after_end = {
            tp.partition: (o.offset, o.timestamp) if o else None
            for tp, o in consumer.offsets_for_times(late).items()
        }
    finally:
        consumer.close()
    return {
        "acks": acks,
        "consumed": consumed,
        "beginning": beginning,
        "end": end,
        "offsets_for_times": by_time,
        "offsets_for_times_after_end": after_end,
    }


def produce_consume_confluent(bootstrap: str) -> dict:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = unique("pc-ck")
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "interop-ck",
                         "linger.ms": 5})  # fmt: skip
    acks: list = [None] * N_RECORDS
    errors: list = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err.code()))
            else:
                acks[i] = (msg.partition(), msg.offset(), msg.timestamp())

        return cb

    for i, r in enumerate(records()):
        kw = {"headers": r["headers"]} if r["headers"] else {}
        producer.produce(topic, key=r["key"], value=r["value"], partition=r["partition"],
                         timestamp=r["timestamp"], on_delivery=on_delivery(i), **kw)  # fmt: skip
    assert producer.flush(30) == 0, "confluent producer did not flush"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("unused"),
                         "client.id": "interop-ck", "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < N_RECORDS and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=100, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consume error {m.error()}")
                got.append(m)
        consumed = sorted(
            (m.partition(), m.offset(), m.key(), m.value(), _norm_headers(m.headers()),
             *m.timestamp())
            for m in got
        )  # fmt: skip
        watermarks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                      for p in range(PARTITIONS)}  # fmt: skip
        by_time = consumer.offsets_for_times(
            [TopicPartition(topic, p, BASE_TS + 14_500) for p in range(PARTITIONS)], timeout=10
        )
        after_end = consumer.offsets_for_times(
            [TopicPartition(topic, p, BASE_TS + 10**9) for p in range(PARTITIONS)], timeout=10
        )
    finally:
        consumer.close()
    return {
        "delivery_errors": errors,
        "acks": acks,
        "consumed": consumed,
        "watermarks": watermarks,
        "offsets_for_times": {tp.partition: (tp.offset, tp.error) for tp in by_time},
        "offsets_for_times_after_end": {tp.partition: (tp.offset, tp.error) for tp in after_end},
    }


# --- scenario: consumer group, commits, group admin ----------------------------------------


def consumer_group_kafka_python(bootstrap: str) -> dict:
    """Two members in one group (range assignor), consume, commit, leave; then the group as the
    admin API sees it. Member ids are normalised to the consumer's client id."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = unique("grp-kp")
    group = unique("g-kp")
    producer = _kp_producer(bootstrap)
    try:
        for r in records():
            producer.send(topic, key=r["key"], value=r["value"], partition=r["partition"])
        producer.flush(30)
    finally:
        producer.close(10)

    def member(name: str):
        return KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, client_id=name,
            enable_auto_commit=False, auto_offset_reset="earliest",
            heartbeat_interval_ms=500, session_timeout_ms=10000, max_poll_interval_ms=30000,
        )  # fmt: skip

    a = member("interop-a")
    seen: dict[str, list] = {"interop-a": [], "interop-b": []}
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 30
        while len(seen["interop-a"]) < N_RECORDS and time.monotonic() < deadline:
            for batch in a.poll(timeout_ms=300).values():
                seen["interop-a"].extend((m.partition, m.offset) for m in batch)
        result["alone_assignment"] = sorted(tp.partition for tp in a.assignment())
        result["alone_consumed"] = len(seen["interop-a"])
        # Generation numbers are timing-specific: kafka-python rejoins once more when a
        # metadata refresh lands during its first join (seen on both brokers: 1 or 2), so only
        # the step from one member to two (always +1) is compared, not the number itself.
        alone_generation = a._coordinator._generation.generation_id
        a.commit({TopicPartition(topic, p): OffsetAndMetadata(5, f"meta-{p}", -1)
                  for p in range(PARTITIONS)})  # fmt: skip
        result["committed_by_a"] = {p: a.committed(TopicPartition(topic, p), metadata=False)
                                    for p in range(PARTITIONS)}  # fmt: skip

        # Two members: each polled by its own thread (a KafkaConsumer rejoins only inside
        # poll(); polling both from one thread in turn makes each rebalance wait for the other
        # and can storm on either broker).
        b = member("interop-b")
        stop = threading.Event()

        def keep_polling(consumer) -> None:
            while not stop.is_set():
                consumer.poll(timeout_ms=100)

        threads = [threading.Thread(target=keep_polling, args=(c,), daemon=True) for c in (a, b)]
        for t in threads:
            t.start()
        try:
            def settled() -> tuple | None:
                ga = a._coordinator._generation.generation_id
                gb = b._coordinator._generation.generation_id
                sizes = sorted((len(a.assignment()), len(b.assignment())))
                return (ga, sizes) if ga == gb and sizes == [1, 2] else None

            last, since = None, time.monotonic()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = settled()
                if now != last:
                    last, since = now, time.monotonic()
                elif now is not None and time.monotonic() - since > 1.0:
                    break
                time.sleep(0.05)
            result["two_member_assignment"] = sorted(
                [sorted(tp.partition for tp in a.assignment()),
                 sorted(tp.partition for tp in b.assignment())]
            )  # fmt: skip
            result["two_member_generation_step"] = (
                a._coordinator._generation.generation_id - alone_generation
            )
            with KpRaw(bootstrap) as raw:
                result["describe_two"] = _kp_group(raw.admin.describe_groups([group])[group])
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            b.close()
    finally:
        a.close()

    with KpRaw(bootstrap) as raw:
        deadline = time.monotonic() + 15
        while True:
            summary = _kp_group(raw.admin.describe_groups([group])[group])
            if summary["state"] == "Empty" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        result["describe_after_close"] = summary
        offsets = raw.admin.list_group_offsets({group: None})[group]
        result["list_group_offsets"] = sorted(
            (tp.topic == topic, tp.partition, om.offset, om.metadata) for tp, om in offsets.items()
        )
        result["listed"] = [
            (g["group_id"], g.get("protocol_type"), g.get("group_state"))
            for g in raw.admin.list_groups() if g["group_id"] == group
        ]  # fmt: skip
        result["delete_groups"] = raw.admin.delete_groups([group])
        result["describe_after_delete"] = _kp_group(raw.admin.describe_groups([group])[group])
        result["delete_groups_again"] = raw.admin.delete_groups([group])
    return result


def _kp_group(d: dict) -> dict:
    """A DescribeGroups entry from kafka-python, with member ids/hosts dropped (normalised)."""
    members = d.get("members") or []
    return {
        "error": d.get("error") and d["error"].split(":")[0],  # class name, not the message
        "state": d.get("group_state"),
        "protocol_type": d.get("protocol_type"),
        "protocol": d.get("protocol_data"),
        "members": sorted(m.get("client_id") for m in members),
        "assignments": sorted(
            sorted(p for t in (m.get("member_assignment") or {}).get("assigned_partitions", [])
                   for p in t.get("partitions", []))
            for m in members
        ),
    }


def _kp_plain(value):
    """kafka-python 3 results → plain data (dicts, lists)."""
    if hasattr(value, "to_dict"):
        return _kp_plain(value.to_dict())
    if isinstance(value, dict):
        return {k: _kp_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_kp_plain(v) for v in value]
    return value


def consumer_group_confluent(bootstrap: str) -> dict:
    """One librdkafka member: join, consume, commit with metadata, committed(), leave; then the
    AdminClient's view (describe, list, committed offsets, delete)."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = unique("grp-ck")
    group = unique("g-ck")
    producer = Producer({"bootstrap.servers": bootstrap})
    for r in records():
        producer.produce(topic, key=r["key"], value=r["value"], partition=r["partition"])
    assert producer.flush(30) == 0
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": "interop-ck",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
    })  # fmt: skip
    result: dict[str, Any] = {}
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < N_RECORDS and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=100, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consume error {m.error()}")
                got.append((m.partition(), m.offset()))
        result["consumed"] = sorted(got)
        result["assignment"] = sorted(tp.partition for tp in consumer.assignment())
        consumer.commit(
            offsets=[TopicPartition(topic, p, 7, metadata=f"m{p}") for p in range(PARTITIONS)],
            asynchronous=False,
        )
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
        result["committed"] = sorted((tp.partition, tp.offset, tp.metadata) for tp in committed)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        desc = admin.describe_consumer_groups([group])[group].result(15)
        result["describe_stable"] = {
            "state": desc.state.name,
            "protocol_type": "consumer" if desc.is_simple_consumer_group is False else "simple",
            "partition_assignor": desc.partition_assignor,
            "members": sorted(m.client_id for m in desc.members),
            "member_assignment": sorted(
                tp.partition for m in desc.members for tp in m.assignment.topic_partitions
            ),
        }
    finally:
        consumer.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups().result(15)
    result["listed"] = sorted(
        (g.group_id, g.is_simple_consumer_group, g.state.name)
        for g in listed.valid if g.group_id == group
    )  # fmt: skip
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    res = offsets[group].result(15)
    result["group_offsets"] = sorted(
        (tp.partition, tp.offset, tp.metadata) for tp in res.topic_partitions
    )
    after = admin.describe_consumer_groups([group])[group].result(15)
    result["describe_after_close"] = {"state": after.state.name, "members": len(after.members)}
    admin.delete_consumer_groups([group])[group].result(15)
    return result


# --- scenario: topic admin -----------------------------------------------------------------


def attempt(fn: Callable[[], Any]) -> Any:
    """fn()'s value, or what it raised as comparable data: ("raised", exception type, Kafka
    error code when the exception carries one). Each step of a scenario runs through this, so
    one unsupported request does not hide the answers to the later ones."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the outcome is the data
        from confluent_kafka import KafkaException

        if isinstance(e, KafkaException) and e.args and hasattr(e.args[0], "code"):
            return ("raised", "KafkaException", e.args[0].code(), e.args[0].name())
        return ("raised", type(e).__name__, getattr(e, "errno", None))


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def admin_kafka_python(bootstrap: str) -> dict:
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = unique("adm-kp")
    result: dict[str, Any] = {}
    with KpRaw(bootstrap) as raw:
        admin = raw.admin

        def create():
            r = admin.create_topics(
                {topic: {"num_partitions": 2, "replication_factor": 1,
                         "configs": {"retention.ms": "3600000", "cleanup.policy": "delete"}}},
                raise_errors=False,
            )  # fmt: skip
            return [(t["name"], error_name(t["error_code"]), t.get("num_partitions"))
                    for t in r["topics"]]  # fmt: skip

        result["create"] = attempt(create)
        # Metadata with allow_auto_topic_creation=False (describe_topics): no auto-create here
        result["listed"] = attempt(lambda: _wait(lambda: topic in admin.list_topics(), 10))
        result["describe"] = attempt(lambda: [
            (t["name"], error_name(t["error_code"]),
             sorted(p["partition_index"] for p in t["partitions"]))
            for t in admin.describe_topics([topic])
        ])  # fmt: skip

        def configs():
            r = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return _kp_topic_configs(r, ("retention.ms", "cleanup.policy"))

        result["describe_configs"] = attempt(configs)

        def create_partitions():
            r = admin.create_partitions({topic: 4}, raise_errors=False)
            return [(t["name"], error_name(t["error_code"])) for t in _kp_plain(r)["results"]]

        result["create_partitions"] = attempt(create_partitions)

        def partitions() -> int:
            return len(admin.describe_topics([topic])[0]["partitions"])

        result["partitions_after"] = attempt(lambda: _wait(lambda: partitions() == 4) and 4
                                             or partitions())  # fmt: skip

        def delete():
            r = admin.delete_topics([topic], raise_errors=False)
            return [(t["name"], error_name(t["error_code"])) for t in r["topics"]]

        result["delete"] = attempt(delete)
        result["gone_after_delete"] = attempt(
            lambda: _wait(lambda: topic not in admin.list_topics())
        )
    return result


def _kp_topic_configs(configs, keys) -> dict:
    found: dict[str, Any] = {}

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k in keys and isinstance(x, dict) and "value" in x:
                    found[k] = x["value"]
                elif isinstance(x, dict | list):
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(_kp_plain(configs))
    return dict(sorted(found.items()))


def admin_confluent(bootstrap: str) -> dict:
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = unique("adm-ck")
    result: dict[str, Any] = {}
    fs = admin.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "3600000"})],
                             operation_timeout=15)  # fmt: skip
    result["create"] = _ck_outcome(fs[topic])

    def metadata():
        # all topics: a Metadata request naming the topic would auto-create it
        def seen():
            t = admin.list_topics(timeout=10).topics.get(topic)
            return t is not None and len(t.partitions) == 2

        _wait(seen)
        t = admin.list_topics(timeout=10).topics.get(topic)
        return None if t is None else (t.error.code() if t.error else 0, sorted(t.partitions))

    result["metadata"] = attempt(metadata)

    def describe():
        desc = admin.describe_topics(TopicCollection([topic]))[topic].result(15)
        return (desc.name, sorted(p.id for p in desc.partitions),
                [len(p.replicas) for p in desc.partitions])  # fmt: skip

    result["describe_topics"] = attempt(describe)

    def configs():
        entries = next(iter(admin.describe_configs([ConfigResource("TOPIC", topic)]).values()))
        entries = entries.result(15)
        return {k: entries[k].value for k in ("retention.ms", "cleanup.policy") if k in entries}

    result["describe_configs"] = attempt(configs)
    fs = admin.create_partitions([NewPartitions(topic, 3)], operation_timeout=15)
    result["create_partitions"] = _ck_outcome(fs[topic])
    fs = admin.delete_topics([topic], operation_timeout=15)
    result["delete"] = _ck_outcome(fs[topic])
    return result


def _ck_outcome(future) -> Any:
    """None on success, else (code, name) of the KafkaError (message text dropped)."""
    from confluent_kafka import KafkaException

    try:
        future.result(20)
        return None
    except KafkaException as e:
        err = e.args[0]
        return (err.code(), err.name())


# --- scenario: error codes -----------------------------------------------------------------


def errors_kafka_python(bootstrap: str) -> dict:
    """The broker's error code for each invalid request, as kafka-python receives it."""
    import kafka.errors as Errors
    from kafka.protocol.consumer.fetch import FetchRequest
    from kafka.protocol.consumer.offsets import ListOffsetsRequest
    from kafka.protocol.metadata.metadata import MetadataRequest

    topic = unique("err-kp")
    result: dict[str, Any] = {}
    producer = _kp_producer(bootstrap, max_request_size=8 * 1024 * 1024)
    try:
        for i in range(3):
            producer.send(topic, value=b"x%d" % i, partition=0).get(30)
        # too large message: the client allows it (max_request_size 8 MiB), the broker must not
        try:
            producer.send(topic, value=b"\x01" * BIG, partition=0).get(30)
            result["too_large"] = "accepted"
        except Errors.KafkaError as e:
            result["too_large"] = type(e).__name__
    finally:
        producer.close(10)

    with KpRaw(bootstrap) as raw:
        md = raw.call(MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=unique("nope"))],
            allow_auto_topic_creation=False))  # fmt: skip
        result["metadata_unknown_topic"] = [error_name(t.error_code) for t in md.topics]
        LOT = ListOffsetsRequest.ListOffsetsTopic
        LOP = LOT.ListOffsetsPartition

        def list_offsets(name: str, partition: int, ts: int = -1) -> str:
            r = raw.call(ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
                LOT(name=name, partitions=[LOP(partition_index=partition, timestamp=ts,
                                               current_leader_epoch=-1)])]))  # fmt: skip
            p = r.topics[0].partitions[0]
            return error_name(p.error_code) + (f" offset={p.offset}" if not p.error_code else "")

        result["list_offsets_unknown_topic"] = list_offsets(unique("nope"), 0)
        result["list_offsets_bad_partition"] = list_offsets(topic, 99)
        result["list_offsets_latest"] = list_offsets(topic, 0)
        FT, FP = FetchRequest.FetchTopic, FetchRequest.FetchTopic.FetchPartition

        def fetch(name: str, partition: int, offset: int) -> str:
            r = raw.call(FetchRequest(
                replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1,
                topics=[FT(topic=name, partitions=[FP(
                    partition=partition, fetch_offset=offset, current_leader_epoch=-1,
                    log_start_offset=-1, partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id="", version=12))  # fmt: skip
            # v12 pinned: v13+ names topics by id only (Kafka answers a name-only v13+ fetch
            # with UNKNOWN_TOPIC_ID); pyggy offers Fetch up to v12
            if r.error_code:
                return "top-level " + error_name(r.error_code)
            p = r.responses[0].partitions[0]
            return error_name(p.error_code) + f" hw={p.high_watermark}"

        result["fetch_offset_out_of_range"] = fetch(topic, 0, 1000)
        result["fetch_bad_partition"] = fetch(topic, 99, 0)
        result["fetch_unknown_topic"] = fetch(unique("nope"), 0, 0)
        result["fetch_ok"] = fetch(topic, 0, 0)

        # topic admin errors
        def create(name: str, **spec) -> str:
            spec = {"num_partitions": 1, "replication_factor": 1} | spec
            r = raw.admin.create_topics({name: spec}, raise_errors=False)
            return error_name(r["topics"][0]["error_code"])

        dup = unique("dup")
        result["create_topic"] = attempt(lambda: create(dup))
        result["create_duplicate_topic"] = attempt(lambda: create(dup))
        for label, spec in {
            "create_invalid_config_value": {"configs": {"cleanup.policy": "bogus"}},
            "create_invalid_config_number": {"configs": {"retention.ms": "soon"}},
            "create_unknown_config": {"configs": {"no.such.config": "1"}},
            "create_zero_partitions": {"num_partitions": 0},
            "create_replication_factor_3": {"replication_factor": 3},
        }.items():
            result[label] = attempt(lambda spec=spec: create(unique("bad"), **spec))

        def delete_unknown() -> str:
            r = raw.admin.delete_topics([unique("nope")], raise_errors=False)
            return error_name(r["topics"][0]["error_code"])

        result["delete_unknown_topic"] = attempt(delete_unknown)

        result.update(_group_errors_kafka_python(raw, topic))
    return result


def _group_errors_kafka_python(raw: KpRaw, topic: str) -> dict:
    """JoinGroup/SyncGroup/Heartbeat/OffsetCommit/LeaveGroup with a wrong generation or an
    unknown member. Protocol type "interop" with opaque metadata, so neither broker parses it."""
    from kafka.protocol.consumer.group import (
        HeartbeatRequest,
        JoinGroupRequest,
        LeaveGroupRequest,
        OffsetCommitRequest,
        SyncGroupRequest,
    )

    out: dict[str, Any] = {}
    group = unique("g-err")
    node = raw.coordinator(group)

    def join(member_id: str = ""):
        return raw.call(JoinGroupRequest(
            group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
            member_id=member_id, group_instance_id=None, protocol_type="interop",
            protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="p1", metadata=b"\x00\x01")],
            reason=None), node)  # fmt: skip

    def heartbeat(generation: int, member_id: str) -> str:
        r = raw.call(HeartbeatRequest(group_id=group, generation_id=generation,
                                      member_id=member_id, group_instance_id=None), node)
        return error_name(r.error_code)

    first = join()
    out["join_without_member_id"] = error_name(first.error_code)
    member_id = first.member_id
    joined = join(member_id) if first.error_code == 79 else first
    out["join"] = (error_name(joined.error_code), joined.generation_id,
                   joined.leader == joined.member_id, joined.protocol_name,
                   [m.metadata for m in joined.members])  # fmt: skip
    member_id, generation = joined.member_id, joined.generation_id
    SA = SyncGroupRequest.SyncGroupRequestAssignment

    def sync(gen: int, mid: str) -> tuple:
        r = raw.call(SyncGroupRequest(
            group_id=group, generation_id=gen, member_id=mid, group_instance_id=None,
            protocol_type="interop", protocol_name="p1",
            assignments=[SA(member_id=member_id, assignment=b"\x07")]), node)  # fmt: skip
        return (error_name(r.error_code), bytes(r.assignment) if not r.error_code else None)

    out["sync_wrong_generation"] = sync(generation + 5, member_id)
    out["sync_unknown_member"] = sync(generation, "no-such-member")
    out["sync"] = sync(generation, member_id)
    out["heartbeat"] = heartbeat(generation, member_id)
    out["heartbeat_wrong_generation"] = heartbeat(generation + 5, member_id)
    out["heartbeat_unknown_member"] = heartbeat(generation, "no-such-member")
    OCT = OffsetCommitRequest.OffsetCommitRequestTopic
    OCP = OCT.OffsetCommitRequestPartition

    def commit(gen: int, mid: str) -> list:
        r = raw.call(OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=gen, member_id=mid,
            group_instance_id=None, retention_time_ms=-1,
            topics=[OCT(name=topic, partitions=[OCP(
                partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                commit_timestamp=-1, committed_metadata="")])]), node)  # fmt: skip
        return [error_name(p.error_code) for t in r.topics for p in t.partitions]

    out["commit_wrong_generation"] = commit(generation + 5, member_id)
    out["commit_unknown_member"] = commit(generation, "no-such-member")
    out["commit"] = commit(generation, member_id)
    r = raw.call(HeartbeatRequest(group_id=unique("g-none"), generation_id=1,
                                  member_id="no-such-member", group_instance_id=None),
                 raw.coordinator(unique("g-none")))  # fmt: skip
    out["heartbeat_unknown_group"] = error_name(r.error_code)

    def leave(mid: str) -> tuple:
        r = raw.call(LeaveGroupRequest(group_id=group, members=[
            LeaveGroupRequest.MemberIdentity(member_id=mid, group_instance_id=None,
                                             reason=None)]), node)  # fmt: skip
        return (error_name(r.error_code), [error_name(m.error_code) for m in r.members])

    out["leave_unknown_member"] = leave("no-such-member")
    out["leave"] = leave(member_id)
    out["heartbeat_after_leave"] = heartbeat(generation, member_id)
    return out


def errors_confluent(bootstrap: str) -> dict:
    """The error each invalid request gives through librdkafka (KafkaError code and name)."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicCollection, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    result: dict[str, Any] = {}
    topic = unique("err-ck")
    # message.max.bytes raised on the client so the broker, not librdkafka, decides
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 8 * 1024 * 1024,
                         "retries": 0})  # fmt: skip
    outcomes: list = []

    def cb(err, msg):
        outcomes.append(None if err is None else (err.code(), err.name()))

    for i in range(3):
        producer.produce(topic, value=b"x%d" % i, partition=0, on_delivery=cb)
    producer.flush(30)
    producer.produce(topic, value=b"\x01" * BIG, partition=0, on_delivery=cb)
    producer.flush(30)
    result["produce"] = outcomes[:3]
    result["too_large"] = outcomes[3:]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.describe_topics(TopicCollection([unique("nope")]))
        fs = admin.describe_topics(TopicCollection([unique("nope")]))
        result["describe_unknown_topic"] = _ck_outcome(next(iter(fs.values())))
    except Exception as e:  # noqa: BLE001 - record what happened
        result["describe_unknown_topic"] = type(e).__name__
    dup = unique("dup")
    result["create"] = _ck_outcome(admin.create_topics([NewTopic(dup, 1, 1)])[dup])
    result["create_duplicate"] = _ck_outcome(admin.create_topics([NewTopic(dup, 1, 1)])[dup])
    bad = unique("bad")
    result["create_invalid_config"] = _ck_outcome(
        admin.create_topics([NewTopic(bad, 1, 1, config={"cleanup.policy": "bogus"})])[bad]
    )
    bad = unique("bad")
    result["create_zero_partitions"] = _ck_outcome(
        admin.create_topics([NewTopic(bad, 0, 1)])[bad]
    )
    nope = unique("nope")
    result["delete_unknown_topic"] = _ck_outcome(admin.delete_topics([nope])[nope])

    # offset out of range: assign past the end with auto.offset.reset=error
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("unused"),
                         "auto.offset.reset": "error", "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, 1000)])
        err = None
        deadline = time.monotonic() + 20
        while err is None and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error():
                err = m.error()
        result["offset_out_of_range"] = (err.code(), err.name()) if err else None
        result["offset_out_of_range_is_auto_reset"] = (
            err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET
        )
    finally:
        consumer.close()
    return result


def producer_state_kafka_python(bootstrap: str) -> dict:
    """An idempotent producer's state as the partition leader checks it (Kafka's
    ProducerAppendInfo rules), with raw requests so that every answer is the broker's: in-order
    batches, a retried one (its original offset), a gap, InitProducerId naming the producer's
    own id and epoch (the request kafka-python sends to bump its epoch, KIP-360), a new epoch
    not starting at 0 and starting at 0, the old epoch after it, a new producer starting
    anywhere. Producer ids are kept only as "the same id or not"."""
    from kafka.protocol.producer.produce import ProduceRequest
    from kafka.protocol.producer.transaction import InitProducerIdRequest
    from kafka.record.default_records import DefaultRecordBatchBuilder

    topic = unique("pst")
    result: dict[str, Any] = {}
    with KpRaw(bootstrap) as raw:
        created = raw.admin.create_topics({topic: {"num_partitions": 1,
                                                   "replication_factor": 1}},
                                          raise_errors=False)
        result["create"] = error_name(created["topics"][0]["error_code"])

        def init(pid: int = -1, epoch: int = -1) -> tuple[str, int, int]:
            for _ in range(100):  # a starting Kafka broker: COORDINATOR_LOAD_IN_PROGRESS
                r = raw.call(InitProducerIdRequest(transactional_id=None,
                                                   transaction_timeout_ms=60000,
                                                   producer_id=pid, producer_epoch=epoch,
                                                   version=4))
                if r.error_code not in (14, 15):
                    break
                time.sleep(0.2)
            return error_name(r.error_code), r.producer_id, r.producer_epoch

        def produce(pid: int, epoch: int, seq: int, count: int = 1) -> str:
            b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                          producer_id=pid, producer_epoch=epoch,
                                          base_sequence=seq, batch_size=1 << 20)
            for i in range(count):
                b.append(i, timestamp=BASE_TS, key=None, value=b"v%d" % (seq + i), headers=[])
            Topic = ProduceRequest.TopicProduceData
            r = raw.call(ProduceRequest(
                transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[Topic(
                    name=topic, partition_data=[Topic.PartitionProduceData(
                        index=0, records=bytes(b.build()))])],
                version=12))  # fmt: skip  # v13+ names topics by id only
            p = r.responses[0].partition_responses[0]
            return error_name(p.error_code) + (f" offset={p.base_offset}"
                                               if not p.error_code else "")

        error, first, epoch = init()
        result["init"] = (error, epoch)
        result["in_order"] = [produce(first, 0, 0, 2), produce(first, 0, 2)]
        result["retry"] = produce(first, 0, 0, 2)
        result["gap"] = produce(first, 0, 5)
        error, bumped, epoch = init(first, 0)
        result["init_naming_itself"] = (error, bumped == first, epoch)
        result["new_epoch_not_at_0"] = produce(first, 1, 3)
        result["new_epoch_at_0"] = [produce(first, 1, 0), produce(first, 1, 1)]
        result["old_epoch_after_it"] = produce(first, 0, 3)
        result["new_producer_anywhere"] = [produce(bumped, 0, 7), produce(bumped, 0, 8),
                                           produce(bumped, 0, 10)]
    return result


SCENARIOS: dict[str, dict[str, Callable[[str], Any]]] = {
    "produce_consume": {
        "kafka-python": produce_consume_kafka_python,
        "confluent-kafka": produce_consume_confluent,
    },
    "consumer_group": {
        "kafka-python": consumer_group_kafka_python,
        "confluent-kafka": consumer_group_confluent,
    },
    "topic_admin": {"kafka-python": admin_kafka_python, "confluent-kafka": admin_confluent},
    "error_codes": {"kafka-python": errors_kafka_python, "confluent-kafka": errors_confluent},
}
