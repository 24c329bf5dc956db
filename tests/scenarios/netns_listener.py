"""Run inside a private network namespace (test_kafka_auth_modes.py): a pyggy whose Kafka
listener binds 0.0.0.0 — reachable from nowhere but this namespace's loopback — and clients
that try it. Prints one JSON line of findings."""

from __future__ import annotations

import json
import socket
import struct
import sys
from pathlib import Path

from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame

from pyggy.testing import PyggyServer, free_port


def api_versions(port: int) -> int:
    """ApiVersions v3 without SASL: its error code (served before authentication)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_frame(18, 3, 1, "netns", {"client_software_name": "netns",
                                                     "client_software_version": "1"}))
        size = struct.unpack(">i", s.recv(4))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    _, pos = parse_response_header(data, 18, 3)
    return decode_response(18, 3, data[pos:])["error_code"]


def main(workdir: str, mode: str) -> None:
    from confluent_kafka.admin import AdminClient

    port = free_port()
    env = {"IGGY_KAFKA_ADDRESS": f"0.0.0.0:{port}", "IGGY_KAFKA_ADVERTISED_HOST": "127.0.0.1"}
    if mode:
        env["IGGY_KAFKA_AUTHENTICATION"] = mode
    server = PyggyServer(Path(workdir), kafka_port=port, tcp_port=free_port(), env=env).start()
    out: dict = {}
    try:
        server.wait_for_log("kafka listening on")
        decision = server.wait_for_log("kafka authentication:")
        out["decision"] = decision.split("kafka authentication: ", 1)[1]
        out["warned"] = any("accepts anonymous clients" in line for line in server.logs)
        out["api_versions"] = api_versions(port)
        try:
            topics = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(
                timeout=4).topics
            out["anonymous"] = "served"
        except Exception as e:  # refused: the connection is closed after ApiVersions
            out["anonymous"] = f"refused: {type(e).__name__}"
        sasl = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "iggy",
                "sasl.password": "iggy"}
        topics = AdminClient(sasl).list_topics(timeout=10).topics
        out["sasl"] = "served" if topics is not None else "?"
        out["closed"] = any("before SASL authentication (this listener requires it)" in line
                            for line in server.logs)
    finally:
        out["exit"] = server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
