"""An in-test OTLP receiver: OTLP/gRPC (opentelemetry-proto service stubs) and OTLP/HTTP
(protobuf, optionally gzip) on free loopback ports, collecting spans and log records."""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass
class Span:
    name: str
    trace_id: bytes
    span_id: bytes
    kind: int
    attributes: dict[str, Any]
    links: list[tuple[bytes, bytes, dict[str, Any]]]  # (trace_id, span_id, attributes)
    resource: dict[str, Any]
    parent_span_id: bytes = b""
    start_ns: int = 0
    end_ns: int = 0


@dataclass
class LogRecord:
    body: str
    trace_id: bytes
    span_id: bytes
    severity: str
    resource: dict[str, Any]


@dataclass
class Sink:
    spans: list[Span] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    requests: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add_traces(self, req: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.cond:
            self.requests += 1
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(Span(
                            s.name, s.trace_id, s.span_id, s.kind, attrs(s.attributes),
                            [(ln.trace_id, ln.span_id, attrs(ln.attributes))
                             for ln in s.links], resource, s.parent_span_id,
                            s.start_time_unix_nano, s.end_time_unix_nano))
            self.cond.notify_all()

    def add_logs(self, req: logs_service_pb2.ExportLogsServiceRequest) -> None:
        with self.cond:
            self.requests += 1
            for rl in req.resource_logs:
                resource = attrs(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        self.logs.append(LogRecord(str(_value(r.body)), r.trace_id, r.span_id,
                                                   r.severity_text, resource))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> Any:
        """Wait until `predicate(self)` is truthy; return it (or fail with what arrived)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver: condition not met in {timeout} s; spans "
                        f"{sorted({s.name for s in self.spans})}, {len(self.logs)} logs")
                self.cond.wait(remaining)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        self.sink.add_traces(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def Export(self, request, context):  # noqa: N802
        self.sink.add_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class GrpcReceiver:
    def __init__(self) -> None:
        self.sink = Sink()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self.sink), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self.sink), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def endpoint(self, signal: str) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(0)


class HttpReceiver:
    def __init__(self) -> None:
        self.sink = sink = Sink()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    sink.add_traces(req)
                    reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/logs":
                    sink.add_logs(logs_service_pb2.ExportLogsServiceRequest.FromString(body))
                    reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, signal: str) -> str:
        return f"http://127.0.0.1:{self.port}/v1/{signal}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
