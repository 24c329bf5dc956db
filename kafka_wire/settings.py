"""What the Kafka door needs to know about its node and its defaults."""

from __future__ import annotations

from pyggy.core.lean import lean


@lean
class KafkaSettings:
    """The Kafka door's settings (`[kafka]`)."""

    host: str = "127.0.0.1"  # advertised in Metadata / FindCoordinator
    port: int = 9092
    node_id: int = 0
    cluster_id: str = "pyggy-cluster-0000000"
    default_stream: str = "kafka"  # the Iggy stream that holds topics created through Kafka
    stream_separator: str = "."  # topic "<stream>.<topic>" reaches topics of other streams
    auto_create_topics: bool = True
    num_partitions: int = 1  # partitions of an auto-created topic
    max_message_bytes: int = 1_048_588  # Kafka's message.max.bytes default
    max_frame_size: int = 100 * 1024 * 1024
    # Only ApiVersions and the SASL APIs are served before a successful SASL authentication
    # (`[kafka] authentication` "sasl", or "auto" on a listener that is not loopback-only);
    # False lets anonymous clients in with full access. The transport closes a connection
    # that has not authenticated within [kafka] auth_timeout.
    requires_auth: bool = False
    # KIP-368: a SASL session lasts this long (ms) before the client must re-authenticate on
    # the same connection (`[kafka] connections_max_reauth`); 0 = forever
    reauth_ms: int = 0
    # Kafka's transactional.id.expiration.ms: an idle transactional id is forgotten after this
    # (`[kafka] transactional_id_expiration`)
    transactional_id_expiration_ms: int = 604_800_000
