"""Kafka admin APIs against a real pyggy server: kafka-python's KafkaAdminClient and
confluent-kafka's AdminClient (CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), and the same topics seen through the
Iggy door (apache-iggy 0.9.0 SDK)."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import AlterConfigOp, KafkaAdminClient
from kafka.admin import ConfigResource as KConfigResource

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)
MS_HOUR = 3_600_000


@pytest.fixture
def server(pyggy_server: PyggyServer) -> PyggyServer:
    pyggy_server.wait_for_log("kafka listening on")
    return pyggy_server


@pytest.fixture
def kadmin(server: PyggyServer):
    admin = KafkaAdminClient(bootstrap_servers=server.kafka_address, client_id="kp-admin")
    yield admin
    admin.close()


@pytest.fixture
def cadmin(server: PyggyServer) -> AdminClient:
    return AdminClient({"bootstrap.servers": server.kafka_address, "client.id": "ck-admin"})


def done(futures: dict, timeout: float = 15) -> dict:
    """Wait for confluent-kafka futures: key → result or the KafkaError it failed with."""
    out = {}
    for key, fut in futures.items():
        try:
            out[key] = fut.result(timeout)
        except KafkaException as e:
            out[key] = e.args[0]
    return out


def kp_configs(admin: KafkaAdminClient, topic: str, synonyms: bool = False) -> dict:
    return admin.describe_configs([KConfigResource("TOPIC", topic)], include_synonyms=synonyms,
                                  config_filter="all")["topic"][topic]


def ck_configs(admin: AdminClient, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return done(admin.describe_configs([res]))[res]


def iggy(server: PyggyServer, action):
    """Run `await action(client)` with a logged-in apache-iggy client."""
    from apache_iggy import IggyClient

    async def run():
        client = IggyClient(server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        return await action(client)

    return asyncio.run(run())


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    return len(admin.describe_topics([topic])[0]["partitions"])


# -- kafka-python ---------------------------------------------------------------------------
def test_kafka_python_topic_lifecycle(kadmin: KafkaAdminClient) -> None:
    created = kadmin.create_topics({"orders": {"num_partitions": 3, "replication_factor": 1,
                                               "configs": {"retention.ms": str(MS_HOUR)}}})
    (t,) = created["topics"]
    assert (t["error_code"], t["num_partitions"], t["replication_factor"]) == (0, 3, 1)
    assert t["configs"]["retention.ms"]["value"] == str(MS_HOUR)
    assert t["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert t["configs"]["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert t["topic_id"] is not None

    with pytest.raises(kerrors.TopicAlreadyExistsError, match="Topic 'orders' already exists."):
        kadmin.create_topics({"orders": {"num_partitions": 3}})

    assert "orders" in kadmin.list_topics()
    assert partition_count(kadmin, "orders") == 3

    configs = kp_configs(kadmin, "orders", synonyms=True)
    assert configs["retention.ms"]["value"] == str(MS_HOUR)
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert [s["source"] for s in configs["retention.ms"]["synonyms"]] == [
        "DYNAMIC_TOPIC_CONFIG", "DEFAULT_CONFIG"]
    assert configs["retention.ms"]["config_type"] == "LONG"
    others = {n: c for n, c in configs.items() if n != "retention.ms"}
    assert {c["config_source"] for c in others.values()} == {"DEFAULT_CONFIG"}
    for name in ("cleanup.policy", "compression.type", "max.message.bytes",
                 "message.timestamp.type", "min.insync.replicas", "retention.bytes",
                 "segment.bytes"):
        assert name in configs
    assert configs["cleanup.policy"]["value"] == "delete"
    assert configs["cleanup.policy"]["config_type"] == "LIST"
    assert configs["preallocate"]["config_type"] == "BOOLEAN"
    assert configs["segment.bytes"]["value"] == "1073741824"
    assert all(not c["read_only"] and not c["is_sensitive"] for c in configs.values())
    # only the modified ones by default
    assert set(kadmin.describe_configs([KConfigResource("TOPIC", "orders")])["topic"]["orders"]
               ) == {"retention.ms"}

    kadmin.create_partitions({"orders": 5})
    assert partition_count(kadmin, "orders") == 5
    with pytest.raises(kerrors.InvalidPartitionsError, match=r"already has 5 partition\(s\)"):
        kadmin.create_partitions({"orders": 5})
    with pytest.raises(kerrors.InvalidPartitionsError, match="would not be an increase"):
        kadmin.create_partitions({"orders": 4})
    kadmin.create_partitions({"orders": 8}, validate_only=True)
    assert partition_count(kadmin, "orders") == 5
    with pytest.raises(kerrors.UnknownTopicOrPartitionError):
        kadmin.create_partitions({"nope": 2})

    kadmin.delete_topics(["orders"])
    assert "orders" not in kadmin.list_topics()
    with pytest.raises(kerrors.UnknownTopicOrPartitionError):
        kadmin.delete_topics(["orders"])


def test_kafka_python_create_errors_and_defaults(kadmin: KafkaAdminClient) -> None:
    with pytest.raises(kerrors.InvalidReplicationFactorError, match="only 1 broker"):
        kadmin.create_topics({"rf3": {"num_partitions": 1, "replication_factor": 3}})
    with pytest.raises(kerrors.InvalidTopicError):
        kadmin.create_topics({"bad/name": {"num_partitions": 1}})
    with pytest.raises(kerrors.InvalidConfigurationError, match="retention.ms"):
        kadmin.create_topics({"badcfg": {"configs": {"retention.ms": "soon"}}})
    with pytest.raises(kerrors.InvalidConfigurationError, match="Unknown topic config"):
        kadmin.create_topics({"badcfg": {"configs": {"no.such.config": "1"}}})
    with pytest.raises(kerrors.InvalidConfigurationError, match="cleanup.policy"):
        kadmin.create_topics({"badcfg": {"configs": {"cleanup.policy": "shred"}}})
    # accepted and described as given (Kafka Connect checks its internal topics this way)
    kadmin.create_topics({"compacted": {"configs": {"cleanup.policy": "compact"}}})
    assert kp_configs(kadmin, "compacted")["cleanup.policy"]["value"] == "compact"
    with pytest.raises(kerrors.InvalidPartitionsError):
        kadmin.create_topics({"zero": {"num_partitions": 0}})
    r = kadmin.create_topics({"checked": {"num_partitions": 4,
                                          "configs": {"max.message.bytes": "5000"}}},
                             validate_only=True)
    assert r["topics"][0]["num_partitions"] == 4
    assert r["topics"][0]["configs"]["max.message.bytes"]["value"] == "5000"
    assert "checked" not in kadmin.list_topics()
    assert not {"rf3", "bad/name", "badcfg", "zero"} & set(kadmin.list_topics())
    # -1 / -1: the broker's num.partitions (1 by default) and replication factor 1
    r = kadmin.create_topics(["defaults"])
    assert (r["topics"][0]["num_partitions"], r["topics"][0]["replication_factor"]) == (1, 1)
    assert partition_count(kadmin, "defaults") == 1


def test_kafka_python_alter_configs(kadmin: KafkaAdminClient) -> None:
    kadmin.create_topics({"cfg": {"num_partitions": 1, "configs": {"retention.ms": "60000"}}})
    res = KConfigResource("TOPIC", "cfg", {
        "max.message.bytes": (AlterConfigOp.SET, "2000000"),
        "retention.ms": (AlterConfigOp.DELETE, None),
        "leader.replication.throttled.replicas": (AlterConfigOp.APPEND, "0:0"),
    })
    assert kadmin.alter_configs([res]) == {"topic": {"cfg": "OK"}}
    c = kp_configs(kadmin, "cfg")
    assert (c["max.message.bytes"]["value"], c["max.message.bytes"]["config_source"]) == (
        "2000000", "DYNAMIC_TOPIC_CONFIG")
    assert (c["retention.ms"]["value"], c["retention.ms"]["config_source"]) == (
        "-1", "DEFAULT_CONFIG")
    assert c["leader.replication.throttled.replicas"]["value"] == "0:0"

    kadmin.alter_configs([KConfigResource("TOPIC", "cfg", {
        "leader.replication.throttled.replicas": (AlterConfigOp.APPEND, "1:0,0:0")})])
    assert kp_configs(kadmin, "cfg")["leader.replication.throttled.replicas"]["value"] == \
        "0:0,1:0"
    kadmin.alter_configs([KConfigResource("TOPIC", "cfg", {
        "leader.replication.throttled.replicas": (AlterConfigOp.SUBTRACT, "0:0")})])
    assert kp_configs(kadmin, "cfg")["leader.replication.throttled.replicas"]["value"] == "1:0"

    # APPEND on a non-list config, an invalid value, a segment size change: refused
    for change in ({"retention.ms": (AlterConfigOp.APPEND, "5")},
                   {"min.insync.replicas": (AlterConfigOp.SET, "0")},
                   {"segment.bytes": (AlterConfigOp.SET, "1048576")}):
        r = kadmin.alter_configs([KConfigResource("TOPIC", "cfg", change)])
        assert r["topic"]["cfg"].startswith("[Error 40] InvalidConfigurationError"), r

    # validate_only changes nothing
    kadmin.alter_configs([KConfigResource("TOPIC", "cfg", {"retention.ms": "1000"})],
                         validate_only=True)
    assert kp_configs(kadmin, "cfg")["retention.ms"]["value"] == "-1"

    # AlterConfigs (not incremental) replaces the whole set: the kafka-python client sends the
    # other modified keys along, the raw request below does not
    kadmin.alter_configs([KConfigResource("TOPIC", "cfg", {"retention.bytes": "1000000"})],
                         incremental=False)
    modified = kadmin.describe_configs([KConfigResource("TOPIC", "cfg")])["topic"]["cfg"]
    assert {n: c["value"] for n, c in modified.items()} == {
        "retention.bytes": "1000000", "max.message.bytes": "2000000",
        "leader.replication.throttled.replicas": "1:0"}
    from kafka.protocol.admin import AlterConfigsRequest

    request = AlterConfigsRequest(resources=[(2, "cfg", [("segment.ms", "1000")])],
                                  validate_only=False)
    resp = kadmin._manager.run(kadmin._manager.send, request)
    assert resp.responses[0].error_code == 0
    modified = kadmin.describe_configs([KConfigResource("TOPIC", "cfg")])["topic"]["cfg"]
    assert {n: c["value"] for n, c in modified.items()} == {"segment.ms": "1000"}

    unknown = kadmin.alter_configs([KConfigResource("TOPIC", "nope", {"retention.ms": "1"})],
                                   raise_on_unknown=False)
    assert unknown["topic"]["nope"].startswith("[Error 3]")


def test_kafka_python_describe_broker_and_unknown_topic(kadmin: KafkaAdminClient) -> None:
    broker = kadmin.describe_configs([KConfigResource("BROKER", "0")], config_filter="all")
    b = broker["broker"]["0"]
    assert b["broker.id"]["value"] == "0" and b["broker.id"]["read_only"]
    assert b["num.partitions"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert b["log.retention.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert b["message.max.bytes"]["value"] == "1048588"
    assert b["default.replication.factor"]["value"] == "1"
    with pytest.raises(kerrors.UnknownTopicOrPartitionError):
        kadmin._manager.run(_describe_raw, kadmin, "missing-topic")
    r = kadmin.alter_configs([KConfigResource("BROKER", "0", {"num.partitions": "3"})],
                             raise_on_unknown=False)
    assert r["broker"]["0"].startswith("[Error 42]")


async def _describe_raw(admin: KafkaAdminClient, topic: str):
    from kafka.protocol.admin import DescribeConfigsRequest

    resp = await admin._manager.send(DescribeConfigsRequest(
        resources=[(2, topic, None)], include_synonyms=False))
    code = resp.results[0].error_code
    if code:
        raise kerrors.for_code(code)(resp.results[0].error_message)
    return resp


def test_kafka_python_delete_records(server: PyggyServer, kadmin: KafkaAdminClient) -> None:
    kadmin.create_topics({"trim": {"num_partitions": 2}})
    producer = KafkaProducer(bootstrap_servers=server.kafka_address, linger_ms=0)
    for i in range(100):
        producer.send("trim", b"v%d" % i, partition=0)
    producer.send("trim", b"other", partition=1)
    producer.flush()
    producer.close()
    tp0, tp1 = TopicPartition("trim", 0), TopicPartition("trim", 1)
    result = kadmin.delete_records({tp0: 42})
    assert result[tp0]["low_watermark"] == 42
    assert kadmin.delete_records({tp0: 10})[tp0]["low_watermark"] == 42  # no step back
    with pytest.raises(kerrors.OffsetOutOfRangeError):
        kadmin.delete_records({tp1: 5})

    consumer = KafkaConsumer(bootstrap_servers=server.kafka_address,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.assign([tp0])
    assert consumer.beginning_offsets([tp0]) == {tp0: 42}
    consumer.seek_to_beginning(tp0)
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 58 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += records
    assert [r.offset for r in got] == list(range(42, 100))
    assert got[0].value == b"v42"
    # an offset below the log start is out of range: the consumer resets to earliest
    consumer.seek(tp0, 5)
    first = []
    deadline = time.monotonic() + 15
    while not first and time.monotonic() < deadline:
        first = [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
    assert first[0].offset == 42
    consumer.close()

    # -1 deletes up to the high watermark
    assert kadmin.delete_records({tp1: -1})[tp1]["low_watermark"] == 1

    async def poll_first(client):
        from apache_iggy import Consumer as IggyConsumer
        from apache_iggy import PollingStrategy

        return await client.poll_messages("kafka", "trim", partition_id=0,
                                          consumer=IggyConsumer.Single(1),
                                          polling_strategy=PollingStrategy.First(), count=5,
                                          auto_commit=False)

    polled = iggy(server, poll_first)
    assert [m.offset() for m in polled] == [42, 43, 44, 45, 46]


# -- confluent-kafka ------------------------------------------------------------------------
def test_confluent_topic_lifecycle(cadmin: AdminClient) -> None:
    r = done(cadmin.create_topics([NewTopic("ck", 3, 1, config={"retention.ms": str(MS_HOUR)})]))
    assert r == {"ck": None}
    err = done(cadmin.create_topics([NewTopic("ck", 3, 1)]))["ck"]
    assert err.code() == 36 and err.str() == "Topic 'ck' already exists."
    md = cadmin.list_topics(timeout=10)
    assert "ck" in md.topics and len(md.topics["ck"].partitions) == 3

    configs = ck_configs(cadmin, "ck")
    assert configs["retention.ms"].value == str(MS_HOUR)
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    rest = [c for n, c in configs.items() if n != "retention.ms"]
    assert rest and all(c.source == ConfigSource.DEFAULT_CONFIG.value for c in rest)
    assert configs["max.message.bytes"].value == "1048588"

    assert done(cadmin.create_partitions([NewPartitions("ck", 5)])) == {"ck": None}
    assert len(cadmin.list_topics(topic="ck", timeout=10).topics["ck"].partitions) == 5
    err = done(cadmin.create_partitions([NewPartitions("ck", 5)]))["ck"]
    assert err.code() == 37
    err = done(cadmin.create_partitions([NewPartitions("ck", 2)]))["ck"]
    assert err.code() == 37

    assert done(cadmin.delete_topics(["ck"])) == {"ck": None}
    assert "ck" not in cadmin.list_topics(timeout=10).topics
    err = done(cadmin.delete_topics(["ck"]))["ck"]
    assert err.code() == 3


def test_confluent_create_errors(cadmin: AdminClient) -> None:
    r = done(cadmin.create_topics([
        NewTopic("rf2", 1, 2),
        NewTopic("bad name", 1),
        NewTopic("badcfg", 1, config={"segment.bytes": "12345"}),
        NewTopic("ok", 2),
    ]))
    assert r["rf2"].code() == 38
    assert r["bad name"].code() == 17
    assert r["badcfg"].code() == 40 and "multiple of 512" in r["badcfg"].str()
    assert r["ok"] is None
    assert done(cadmin.create_topics([NewTopic("vo", 1)], validate_only=True)) == {"vo": None}
    assert set(cadmin.list_topics(timeout=10).topics) == {"ok"}


def test_confluent_alter_configs(cadmin: AdminClient) -> None:
    done(cadmin.create_topics([NewTopic("alt", 1, 1)]))
    res = ConfigResource(ResourceType.TOPIC, "alt", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.timestamp.type", "LogAppendTime",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("follower.replication.throttled.replicas", "0:0",
                    incremental_operation=AlterConfigOpType.APPEND),
    ])
    assert list(done(cadmin.incremental_alter_configs([res])).values()) == [None]
    c = ck_configs(cadmin, "alt")
    assert c["retention.ms"].value == "7200000"
    assert c["message.timestamp.type"].value == "LogAppendTime"
    assert c["follower.replication.throttled.replicas"].value == "0:0"

    bad = ConfigResource(ResourceType.TOPIC, "alt", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SUBTRACT)])
    (err,) = done(cadmin.incremental_alter_configs([bad])).values()
    assert err.code() == 40 and "Can't SUBTRACT to key retention.ms" in err.str()

    delete = ConfigResource(ResourceType.TOPIC, "alt", incremental_configs=[
        ConfigEntry("message.timestamp.type", None,
                    incremental_operation=AlterConfigOpType.DELETE)])
    done(cadmin.incremental_alter_configs([delete]))
    c = ck_configs(cadmin, "alt")
    assert c["message.timestamp.type"].value == "CreateTime"
    assert c["message.timestamp.type"].is_default

    # AlterConfigs replaces the whole dynamic set
    legacy = ConfigResource(ResourceType.TOPIC, "alt", set_config={"retention.bytes": "5000000"})
    with pytest.warns(DeprecationWarning):
        assert list(done(cadmin.alter_configs([legacy])).values()) == [None]
    c = ck_configs(cadmin, "alt")
    assert {n for n, e in c.items() if not e.is_default} == {"retention.bytes"}
    assert c["retention.ms"].value == "-1"

    broker = ConfigResource(ResourceType.BROKER, "0")
    b = done(cadmin.describe_configs([broker]))[broker]
    assert b["broker.id"].value == "0" and b["broker.id"].is_read_only
    assert b["auto.create.topics.enable"].value == "true"


def test_confluent_dynamic_broker_configs(cadmin: AdminClient) -> None:
    """What librdkafka's admin test sets on a broker (a Kafka dynamic broker config pyggy has
    no setting for) is accepted and described as DYNAMIC_BROKER_CONFIG; a config pyggy sets
    in its own config file is refused as Kafka refuses a static one."""
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("sasl.kerberos.min.time.before.relogin", "58000",
                    incremental_operation=AlterConfigOpType.SET)])
    assert list(done(cadmin.incremental_alter_configs([res])).values()) == [None]
    broker = ConfigResource(ResourceType.BROKER, "0")
    b = done(cadmin.describe_configs([broker]))[broker]
    entry = b["sasl.kerberos.min.time.before.relogin"]
    assert (entry.value, entry.source, entry.is_read_only) == ("58000", 2, False)
    static = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("num.partitions", "7", incremental_operation=AlterConfigOpType.SET)])
    (err,) = done(cadmin.incremental_alter_configs([static])).values()
    assert err.code() == 42 and "num.partitions" in err.str()  # INVALID_REQUEST
    gone = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("sasl.kerberos.min.time.before.relogin", None,
                    incremental_operation=AlterConfigOpType.DELETE)])
    assert list(done(cadmin.incremental_alter_configs([gone])).values()) == [None]
    b = done(cadmin.describe_configs([broker]))[broker]
    assert "sasl.kerberos.min.time.before.relogin" not in b


def test_confluent_delete_records(server: PyggyServer, cadmin: AdminClient) -> None:
    done(cadmin.create_topics([NewTopic("cdr", 1, 1)]))
    p = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
    for i in range(30):
        p.produce("cdr", b"r%d" % i, partition=0)
    assert p.flush(15) == 0
    r = done(cadmin.delete_records([CTopicPartition("cdr", 0, 12)]))
    (deleted,) = r.values()
    assert deleted.low_watermark == 12
    c = Consumer({"bootstrap.servers": server.kafka_address, "group.id": "cdr",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    low, high = c.get_watermark_offsets(CTopicPartition("cdr", 0), timeout=10)
    assert (low, high) == (12, 30)
    c.assign([CTopicPartition("cdr", 0, 0)])  # below the start: reset to earliest
    msg = None
    deadline = time.monotonic() + 15
    while msg is None and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and msg.error():
            msg = None
    c.close()
    assert msg is not None and msg.offset() == 12 and msg.value() == b"r12"
    r = done(cadmin.delete_records([CTopicPartition("cdr", 0, 31)]))
    (err,) = r.values()
    assert err.code() == 1


# -- cross-protocol -------------------------------------------------------------------------
def test_kafka_created_topic_is_an_iggy_topic(server: PyggyServer,
                                              kadmin: KafkaAdminClient) -> None:
    from apache_iggy import IggyExpiry, MaxTopicSize

    kadmin.create_topics({"xk": {"num_partitions": 3, "configs": {
        "retention.ms": str(MS_HOUR), "retention.bytes": "50000000",
        "segment.bytes": "2097152", "cleanup.policy": "delete"}}})
    t = iggy(server, lambda c: c.get_topic("kafka", "xk"))
    assert t is not None and t.partitions_count == 3
    assert isinstance(t.message_expiry, IggyExpiry.ExpireDuration)
    assert t.message_expiry.duration == datetime.timedelta(hours=1)
    assert isinstance(t.max_topic_size, MaxTopicSize.Custom)
    assert t.max_topic_size.bytes == 50_000_000
    scalars = t.options.to_scalar_dict()
    assert scalars.get("segment_size") == 2097152
    assert scalars.get("kafka.cleanup.policy") == "delete"

    kadmin.alter_configs([KConfigResource("TOPIC", "xk", {"retention.ms": str(2 * MS_HOUR)})])
    t = iggy(server, lambda c: c.get_topic("kafka", "xk"))
    assert t.message_expiry.duration == datetime.timedelta(hours=2)
    kadmin.alter_configs([KConfigResource("TOPIC", "xk", {
        "retention.ms": (AlterConfigOp.DELETE, None)})])
    t = iggy(server, lambda c: c.get_topic("kafka", "xk"))
    assert isinstance(t.message_expiry, IggyExpiry.NeverExpire)
    kadmin.create_partitions({"xk": 4})
    assert iggy(server, lambda c: c.get_topic("kafka", "xk")).partitions_count == 4
    kadmin.delete_topics(["xk"])
    assert iggy(server, lambda c: c.get_topic("kafka", "xk")) is None


def test_iggy_created_topic_is_a_kafka_topic(server: PyggyServer, kadmin: KafkaAdminClient,
                                             cadmin: AdminClient) -> None:
    from apache_iggy import IggyExpiry

    async def setup(client):
        await client.create_stream("kafka")
        await client.create_topic("kafka", "from-iggy", 2, message_expiry=IggyExpiry
                                  .ExpireDuration(datetime.timedelta(hours=2)))
        await client.create_stream("other")
        await client.create_topic("other", "events", 1)

    iggy(server, setup)
    assert {"from-iggy", "other.events"} <= set(kadmin.list_topics())
    assert partition_count(kadmin, "from-iggy") == 2
    c = kp_configs(kadmin, "from-iggy")
    assert (c["retention.ms"]["value"], c["retention.ms"]["config_source"]) == (
        str(2 * MS_HOUR), "DYNAMIC_TOPIC_CONFIG")
    assert c["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    ck = ck_configs(cadmin, "from-iggy")
    assert ck["retention.ms"].value == str(2 * MS_HOUR)
    assert ck_configs(cadmin, "other.events")["retention.ms"].is_default

    async def update(client):
        await client.update_topic("kafka", "from-iggy", "from-iggy",
                                  message_expiry=IggyExpiry.ExpireDuration(
                                      datetime.timedelta(minutes=5)))

    iggy(server, update)
    assert kp_configs(kadmin, "from-iggy")["retention.ms"]["value"] == "300000"
    kadmin.create_partitions({"other.events": 3})
    assert iggy(server, lambda cl: cl.get_topic("other", "events")).partitions_count == 3
    assert done(cadmin.delete_topics(["other.events"])) == {"other.events": None}
    assert iggy(server, lambda cl: cl.get_topic("other", "events")) is None


# -- aiokafka (non-flexible versions: CreateTopics v3, DescribeConfigs v2, AlterConfigs v1,
# CreatePartitions v1, DeleteTopics v3, DeleteRecords v2) -----------------------------------
def test_aiokafka_admin(server: PyggyServer) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.admin import NewPartitions as ANewPartitions
    from aiokafka.admin import NewTopic as ANewTopic
    from aiokafka.admin.config_resource import ConfigResource as AConfigResource
    from aiokafka.admin.config_resource import ConfigResourceType as AType
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=server.kafka_address)
        await admin.start()
        try:
            r = await admin.create_topics([ANewTopic("ak", 3, 1,
                                                     topic_configs={"retention.ms": "1000"})])
            assert [e[1] for e in r.topic_errors] == [0]
            r = await admin.create_topics([ANewTopic("ak", 3, 1)])
            assert [e[1] for e in r.topic_errors] == [36]
            assert "ak" in await admin.list_topics()
            (r,) = await admin.describe_configs([AConfigResource(AType.TOPIC, "ak")])
            entries = {e[0]: e for e in r.resources[0][4]}
            assert entries["retention.ms"][1:4] == ("1000", False, 1)
            assert entries["cleanup.policy"][1:4] == ("delete", False, 5)
            (r,) = await admin.alter_configs([AConfigResource(AType.TOPIC, "ak",
                                                              {"retention.ms": "2000"})])
            assert r.resources[0][0] == 0
            r = await admin.create_partitions({"ak": ANewPartitions(5)})
            assert [e[1] for e in r.topic_errors] == [0]
            tp = ATopicPartition("ak", 0)
            assert await admin.delete_records({tp: RecordsToDelete(0)}) == {tp: 0}
            r = await admin.delete_topics(["ak"])
            assert [e[1] for e in r.topic_error_codes] == [0]
        finally:
            await admin.close()

    asyncio.run(run())
