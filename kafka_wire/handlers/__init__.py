"""One small handler per Kafka API: `handle(conn, request, version) -> response dict | None`.

Registered with their supported versions in `kafka_wire.registry`."""
