"""OpenTelemetry: server spans and logs over OTLP (`[telemetry]`), off by default.

Off: nothing here imports OpenTelemetry and each door's dispatch pays one `is None` check
per request (`NativeServer.telemetry`, `KafkaServer.telemetry`). On: `Telemetry` builds an
SDK TracerProvider and LoggerProvider with OTLP exporters (gRPC or HTTP/protobuf, per
signal), bounded batch processors (a full queue drops; an unreachable receiver never blocks
or grows the server), and a `logging` handler so log records carry the active trace id.

Spans (kind SERVER): one per native command, named from the command table (`message.send`),
and one per Kafka API request (`kafka.Produce`), with OTel messaging attributes (semantic
conventions v1.44.0, pinned in `SEMCONV`). Background spans: `cleaner`, `archiver.pass`,
`token_cleaner`, `heartbeat.reap`, `kafka.group.evict`; in a cluster `cluster.view_change` (a
group without a primary, from the moment this replica saw it until a primary took over).

Trace context: a produced Kafka record header or Iggy user header `traceparent` (W3C, any
trace-flags value) becomes a span *link* on the produce span. At most `MAX_LINKED_RECORDS`
records of a request are looked at. The header itself is stored and served byte for byte by
both doors (core/records/transcode.py); nothing here changes a message.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from pyggy.config import TelemetryConfig

log = logging.getLogger(__name__)

SEMCONV = "https://opentelemetry.io/schemas/1.44.0"
MAX_LINKED_RECORDS = 16  # records per request whose traceparent header is looked at
TRACEPARENT = b"traceparent"
_TRACEPARENT_RE = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse_traceparent(value: bytes | bytearray | memoryview | None) -> tuple[int, int, int] | None:
    """(trace_id, span_id, flags) of a W3C traceparent value, or None if it is not one.

    Any trace-flags byte is accepted (Level 2 sets 0x02 "random" besides 0x01 "sampled").
    A future version (not 00, not ff) may carry more fields after the four we read.
    """
    if value is None:
        return None
    raw = bytes(value).strip()
    m = _TRACEPARENT_RE.match(raw)
    if m is None:
        return None
    version = m.group(1)
    if version == b"ff" or (version == b"00" and len(raw) != 55):
        return None
    if version != b"00" and len(raw) > 55 and raw[55:56] != b"-":
        return None
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(m.group(4), 16)


def kafka_traceparents(records: Any, limit: int = MAX_LINKED_RECORDS) -> list[bytes]:
    """`traceparent` header values of the first `limit` records of a Produce records field."""
    from pyggy.core.records import kafka_batch

    found: list[bytes] = []
    if not records:
        return found
    seen = 0
    view = memoryview(records)
    for a, b in kafka_batch.split_batches(view):
        for _delta, _ts, _key, _value, headers in kafka_batch.raw_records(view[a:b]):
            for hkey, hval in headers:
                if hkey == TRACEPARENT and hval is not None:
                    found.append(hval)
                    break
            seen += 1
            if seen >= limit:
                return found
    return found


def iggy_traceparents(batch: Any, limit: int = MAX_LINKED_RECORDS) -> list[bytes]:
    """`traceparent` user header values of the first `limit` messages of an Iggy batch."""
    from pyggy.core.records import iggy_batch
    from pyggy.core.records import user_headers as uh

    found: list[bytes] = []
    for n, (_o, _t, _ot, _id, _payload, headers) in enumerate(iggy_batch.iter_messages(batch)):
        if n >= limit:
            break
        if not headers:
            continue
        tlv = bytes(headers)
        if TRACEPARENT not in tlv:  # cheap pre-check on the TLV bytes
            continue
        for kk, k, _vk, v in uh.decode(tlv):
            if kk == uh.STRING and k == TRACEPARENT:
                found.append(v)
                break
    return found


class RequestSpan:
    """The span of one request, as handlers see it (`ctx.span` / `conn.span`)."""

    __slots__ = ("span", "owner")

    def __init__(self, span: Any, owner: Telemetry) -> None:
        self.span = span
        self.owner = owner

    def set(self, **attributes: Any) -> None:
        self.span.set_attributes({k.replace("__", "."): v for k, v in attributes.items()
                                  if v is not None})

    def on_send(self, stream: str, topic: str, partition: int, offset: int, count: int,
                batch: Any) -> None:
        """A native SendMessages appended `count` messages at `offset` (links traceparents)."""
        self.span.set_attributes({
            "messaging.destination.name": topic, "iggy.stream.name": stream,
            "messaging.destination.partition.id": str(partition),
            "messaging.iggy.offset": offset, "messaging.batch.message_count": count,
            "messaging.message.body.size": len(batch), "messaging.operation.type": "send",
            "messaging.operation.name": "send"})
        try:
            values = iggy_traceparents(batch)
        except Exception:  # never let telemetry fail a request
            return
        for link in self.owner._links(values):
            self.span.add_link(link.context, link.attributes)

    def on_poll(self, stream: str, topic: str, partition: int, offset: int, count: int,
                size: int) -> None:
        self.span.set_attributes({
            "messaging.destination.name": topic, "iggy.stream.name": stream,
            "messaging.destination.partition.id": str(partition),
            "messaging.iggy.offset": offset, "messaging.batch.message_count": count,
            "messaging.message.body.size": size, "messaging.operation.type": "receive",
            "messaging.operation.name": "poll"})


class Telemetry:
    """The enabled telemetry of one server. Construct only when `[telemetry] enabled`."""

    def __init__(self, config: TelemetryConfig) -> None:
        # Imported here so a server with telemetry off never loads OpenTelemetry.
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self._trace = trace
        self._context = otel_context
        self._Link, self._SpanContext, self._TraceFlags = Link, SpanContext, TraceFlags
        self._SERVER, self._INTERNAL = SpanKind.SERVER, SpanKind.INTERNAL
        self._error = lambda e: Status(StatusCode.ERROR, str(e))
        self.config = config
        resource = Resource.create({"service.name": config.service_name})
        timeout_ms = config.export_timeout * 1000
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            _span_exporter(config.traces.transport, config.traces.endpoint,
                           config.export_timeout),
            max_queue_size=config.max_queue_size,
            max_export_batch_size=min(512, config.max_queue_size),
            export_timeout_millis=timeout_ms))
        self.tracer = self.tracer_provider.get_tracer("pyggy", schema_url=SEMCONV)
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            _log_exporter(config.logs.transport, config.logs.endpoint, config.export_timeout),
            max_queue_size=config.max_queue_size,
            max_export_batch_size=min(512, config.max_queue_size),
            export_timeout_millis=timeout_ms))
        self.log_handler = LoggingHandler(logger_provider=self.logger_provider)
        # the exporters' own complaints (receiver down) stay local: exporting them would loop
        self.log_handler.addFilter(_not_otel)
        logging.getLogger().addHandler(self.log_handler)
        log.info("telemetry: traces over %s to %s, logs over %s to %s (service %s)",
                 config.traces.transport, config.traces.endpoint, config.logs.transport,
                 config.logs.endpoint, config.service_name)

    # -- trace context ----------------------------------------------------------------------
    def _links(self, values: list[bytes]) -> list:
        links, seen = [], set()
        for value in values:
            parsed = parse_traceparent(value)
            if parsed is None or parsed[:2] in seen:
                continue
            seen.add(parsed[:2])
            trace_id, span_id, flags = parsed
            ctx = self._SpanContext(trace_id, span_id, is_remote=True,
                                    trace_flags=self._TraceFlags(flags))
            links.append(self._Link(ctx, {"messaging.message.traceparent": bytes(value)
                                          .decode("ascii", "replace")}))
        return links

    # -- request spans ----------------------------------------------------------------------
    async def _around(self, span: Any, call: Callable, *args: Any) -> Any:
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            return await call(*args)
        except BaseException as e:
            span.set_status(self._error(e))
            code = getattr(e, "code", None)
            span.set_attribute("error.type", str(code) if code is not None
                               else type(e).__name__)
            raise
        finally:
            self._context.detach(token)
            span.end()

    async def native_command(self, ctx: Any, cmd: Any, body: memoryview, call: Callable) -> Any:
        """Run `call(ctx, cmd, body)` inside the span of native command `cmd`."""
        session = ctx.session
        span = self.tracer.start_span(cmd.name, kind=self._SERVER, attributes={
            "messaging.system": "iggy", "iggy.command.code": cmd.code,
            "messaging.client.id": str(session.client_id), "client.address": session.address,
            "iggy.protocol": "classic" if session.classic else "0.11"})
        ctx.span = RequestSpan(span, self)
        return await self._around(span, call, ctx, cmd, body)

    async def kafka_request(self, conn: Any, api: Any, version: int, request: dict,
                            call: Callable) -> Any:
        """Run `call()` inside the span of Kafka request `api` (named `kafka.<Name>`)."""
        attributes: dict[str, Any] = {
            "messaging.system": "kafka", "kafka.api.key": api.key, "kafka.api.version": version,
            "client.address": conn.host}
        if conn.client_id:
            attributes["messaging.client.id"] = conn.client_id
        links: list = []
        try:
            _request_attributes(api.key, request, attributes, links)
        except Exception:  # malformed records are the handler's to report, not ours
            pass
        span = self.tracer.start_span("kafka." + api.name, kind=self._SERVER,
                                      attributes=attributes, links=self._links(links))

        async def run() -> Any:
            response = await call()
            if response is not None:
                try:
                    _response_attributes(api.key, response, span)
                except Exception:
                    pass
            return response

        return await self._around(span, run)

    async def http_request(self, call_: Any, route: Any, run: Callable) -> Any:
        """Run `run()` inside the span of HTTP route `route` (named `http.<name>`)."""
        span = self.tracer.start_span("http." + route.name, kind=self._SERVER, attributes={
            "http.request.method": route.method, "http.route": route.path,
            "client.address": call_.attempt().host, "messaging.system": "iggy"})
        call_.span = RequestSpan(span, self)
        return await self._around(span, run)

    # -- background spans -------------------------------------------------------------------
    @contextlib.contextmanager
    def background(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A span around one round of background work (it records an exception and re-raises)."""
        with self.tracer.start_as_current_span(name, kind=self._INTERNAL,
                                               attributes=attributes) as span:
            yield span

    def view_changed(self, replica: int, group: int, view: int, primary: int,
                     started_ns: int) -> None:
        """A `cluster.view_change` span: a consensus group of this replica was without a
        primary from `started_ns` until now (view `view`, led by `primary`)."""
        self.tracer.start_span("cluster.view_change", kind=self._INTERNAL, start_time=started_ns,
                               attributes={"pyggy.cluster.replica": replica,
                                           "pyggy.cluster.group": f"{group:#018x}",
                                           "pyggy.cluster.view": view,
                                           "pyggy.cluster.primary": primary}).end()

    def segment_sealed(self, topic: Any, partition_id: int, segment: Any) -> None:
        """An engine seal listener: a `segment.seal` span (a child of the request whose append
        sealed it) with the segment's partition, offsets and size."""
        self.tracer.start_span("segment.seal", kind=self._INTERNAL, attributes={
            "iggy.stream.id": topic.stream_id, "messaging.destination.name": topic.name,
            "messaging.destination.partition.id": str(partition_id),
            "iggy.segment.start_offset": segment.start_offset,
            "iggy.segment.end_offset": segment.next_offset - 1,
            "iggy.segment.size_bytes": segment.size,
            "iggy.segment.batches": len(segment.index)}).end()

    def shutdown(self) -> None:
        """Flush what the queues hold (bounded by the export timeout) and stop exporting."""
        logging.getLogger().removeHandler(self.log_handler)
        for provider in (self.tracer_provider, self.logger_provider):
            try:
                provider.shutdown()
            except Exception:
                log.debug("telemetry shutdown failed", exc_info=True)


def _not_otel(record: logging.LogRecord) -> bool:
    return not record.name.startswith(("opentelemetry", "grpc", "urllib3", "pyggy.telemetry"))


def _request_attributes(key: int, req: dict, attributes: dict, links: list) -> None:
    if key == 0:  # Produce
        from pyggy.core.records import kafka_batch

        topics = req.get("topic_data") or []
        count = size = 0
        parts = []
        for td in topics:
            for pd in td["partition_data"]:
                records = pd["records"]
                parts.append(pd["index"])
                if not records:
                    continue
                size += len(records)
                view = memoryview(records)
                for a, _b in kafka_batch.split_batches(view):  # recordsCount of each batch
                    count += int.from_bytes(view[a + 57:a + 61], "big")
                if len(links) < MAX_LINKED_RECORDS:
                    links.extend(kafka_traceparents(records, MAX_LINKED_RECORDS - len(links)))
        _topic_attributes(attributes, [td["name"] for td in topics], parts)
        attributes.update({"messaging.operation.type": "send", "messaging.operation.name": "send",
                           "messaging.message.body.size": size,
                           "messaging.batch.message_count": count})
    elif key == 1:  # Fetch
        topics = req.get("topics") or []
        _topic_attributes(attributes, [t.get("topic") for t in topics],
                          [p["partition"] for t in topics for p in t["partitions"]])
        attributes.update({"messaging.operation.type": "receive",
                           "messaging.operation.name": "poll"})
        offsets = [p["fetch_offset"] for t in topics for p in t["partitions"]]
        if len(offsets) == 1:
            attributes["messaging.kafka.offset"] = offsets[0]
    elif "group_id" in req and isinstance(req["group_id"], str):
        attributes["messaging.consumer.group.name"] = req["group_id"]


def _topic_attributes(attributes: dict, names: list, partitions: list) -> None:
    names = [n for n in names if n]
    if len(set(names)) == 1:
        attributes["messaging.destination.name"] = names[0]
    elif names:
        attributes["messaging.destination.names"] = sorted(set(names))
    if len(partitions) == 1:
        attributes["messaging.destination.partition.id"] = str(partitions[0])


def _response_attributes(key: int, response: dict, span: Any) -> None:
    if key == 0:
        parts = [p for r in response["responses"] for p in r["partition_responses"]]
        if len(parts) == 1:
            span.set_attribute("messaging.kafka.offset", parts[0]["base_offset"])
        errors = [p["error_code"] for p in parts if p["error_code"]]
        if errors:
            span.set_attribute("error.type", str(errors[0]))
    elif key == 1:
        parts = [p for r in response["responses"] for p in r["partitions"]]
        size = sum(len(p["records"] or b"") for p in parts)
        span.set_attribute("messaging.message.body.size", size)
        errors = [p["error_code"] for p in parts if p["error_code"]]
        if errors:
            span.set_attribute("error.type", str(errors[0]))


def _span_exporter(transport: str, endpoint: str, timeout: float) -> Any:
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint or None, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )
    return GrpcSpanExporter(endpoint=endpoint or None, timeout=timeout,
                            insecure=True if endpoint.startswith("http://") else None)


def _log_exporter(transport: str, endpoint: str, timeout: float) -> Any:
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=endpoint or None, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcLogExporter,
    )
    return GrpcLogExporter(endpoint=endpoint or None, timeout=timeout,
                           insecure=True if endpoint.startswith("http://") else None)


def setup(config: TelemetryConfig) -> Telemetry | None:
    """The server's telemetry, or None (and no OpenTelemetry import) when disabled."""
    if not config.enabled:
        return None
    try:
        return Telemetry(config)
    except ImportError as e:
        log.error("[telemetry] enabled, but OpenTelemetry is not installed (%s); install "
                  "pyggy[telemetry]. Running without telemetry", e)
        return None


def background(telemetry: Telemetry | None, name: str, action: Callable[[], Any],
               **attributes: Any) -> Callable[[], Any]:
    """`action`, or `action` run inside a background span when telemetry is on."""
    if telemetry is None:
        return action
    if inspect.iscoroutinefunction(action):
        async def traced_async() -> Any:
            with telemetry.background(name, **attributes):
                return await action()

        return traced_async

    def traced() -> Any:
        with telemetry.background(name, **attributes):
            return action()

    return traced
