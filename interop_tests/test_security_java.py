"""Security with Kafka's own Java tools against pyggy: the Java client's cells of the security
matrix (tests/scenarios/test_security_matrix.py, same cast and expectations), kafka-acls.sh
showing, adding and removing the restricted user's permissions, and kafka-configs.sh managing
SCRAM credentials (KIP-554). The real broker of this suite runs without an authorizer, so these
run against pyggy only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from interop_tests import java_client
from interop_tests.kafka_broker.broker import KafkaCli
from pyggy.testing import PyggyServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "scenarios"))
from security_cast import (  # noqa: E402
    ALICE_PASSWORD,
    EVERY_TOPIC,
    FORBIDDEN,
    SHARED,
    expected,
    mismatches,
    setup,
)

SECURITY_CELLS = "dev.pyggy.interop.SecurityCells"
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
CONFIG_COMMAND = "kafka.admin.ConfigCommand"


@pytest.fixture
def secured(tmp_path: Path):
    server = PyggyServer(tmp_path, env={"IGGY_KAFKA_AUTHENTICATION": "sasl",
                                        "IGGY_KAFKA_GROUP_INITIAL_REBALANCE_DELAY": "0 s"})
    server.start().wait_for_log("kafka listening on")
    principals = setup(server)
    yield server, principals
    code = server.close()
    logs = "\n".join(server.logs)
    assert code in (None, 0), logs
    assert ALICE_PASSWORD not in logs and "Traceback" not in logs


def _cells(raw: dict[str, str]) -> dict:
    cells: dict = {"list": set(raw.pop("list").split(",")) & EVERY_TOPIC}
    for key, value in raw.items():
        op, _, topic = key.partition(":")
        cells[(op, topic) if topic else op] = int(value)
    return cells


@pytest.mark.timeout(900)
def test_java_client_cells(secured, java_target: Path) -> None:
    server, principals = secured
    results, wanted = {}, {}
    for p in principals:
        tag = "java-" + p.name.replace("/", "-").lower()
        results[p.name] = _cells(java_client.run(
            java_target, server.kafka_address, p.mechanism, p.user, p.secret, tag, SHARED,
            FORBIDDEN, main=SECURITY_CELLS, timeout=600))
        wanted[p.name] = expected(p)
    print("--- java cells ---\n" + "\n".join(f"{k}: {v}" for k, v in results.items()))
    assert not mismatches(results, wanted), "\n".join(mismatches(results, wanted))


def _client_config(path: Path, user: str, password: str,
                   mechanism: str = "SCRAM-SHA-512") -> Path:
    module = ("org.apache.kafka.common.security.scram.ScramLoginModule"
              if mechanism.startswith("SCRAM")
              else "org.apache.kafka.common.security.plain.PlainLoginModule")
    path.write_text("security.protocol=SASL_PLAINTEXT\n"
                    f"sasl.mechanism={mechanism}\n"
                    f"sasl.jaas.config={module} required username=\"{user}\" "
                    f"password=\"{password}\";\n")
    return path


ALICE_READS_SHARED = "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"


@pytest.mark.timeout(600)
def test_kafka_acls_shows_and_changes_the_permissions(secured, kafka_cli: KafkaCli,
                                                      tmp_path: Path) -> None:
    server, _ = secured
    root = _client_config(tmp_path / "root.properties", "iggy", "iggy")

    def acls(*args: object, config: Path = root, check: bool = True):
        return kafka_cli.run(ACL_COMMAND, "--bootstrap-server", server.kafka_address,
                             "--command-config", config, *args, check=check)

    listed = acls("--list").stdout
    shared = listed.split("ResourcePattern(resourceType=TOPIC, name=shared, "
                          "patternType=LITERAL)")[1].split("Current ACLs")[0]
    assert ALICE_READS_SHARED in shared
    assert "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)" in shared
    assert "name=secret.x" not in listed  # alice has no right there; root's are wildcards
    assert "(principal=User:iggy, host=*, operation=ALL, permissionType=ALLOW)" in listed
    mine = acls("--list", "--principal", "User:alice").stdout
    assert ALICE_READS_SHARED in mine and "User:iggy" not in mine

    # grant alice READ on `other` (a topic permission), then take it back
    acls("--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "other")
    other = acls("--list", "--topic", "other").stdout
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in other
    acls("--remove", "--force", "--allow-principal", "User:alice", "--operation", "Read",
         "--topic", "other")
    assert "User:alice" not in acls("--list", "--topic", "other").stdout

    # what Iggy cannot express is refused with a reason
    denied = acls("--add", "--deny-principal", "User:alice", "--operation", "Read",
                  "--topic", "shared", check=False)
    assert "Iggy has no DENY rules" in denied.stdout + denied.stderr

    # alice may not read the users' permissions
    alice = _client_config(tmp_path / "alice.properties", "alice", ALICE_PASSWORD)
    refused = acls("--list", config=alice, check=False)
    assert "ClusterAuthorizationException" in refused.stdout + refused.stderr


@pytest.mark.timeout(600)
def test_kafka_configs_manages_scram_credentials(secured, kafka_cli: KafkaCli,
                                                 tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    server, _ = secured
    root = _client_config(tmp_path / "root.properties", "iggy", "iggy", "PLAIN")

    def configs(*args: object):
        return kafka_cli.run(CONFIG_COMMAND, "--bootstrap-server", server.kafka_address,
                             "--command-config", root, "--entity-type", "users",
                             "--entity-name", "alice", *args)

    def login(mechanism: str, password: str) -> bool:
        try:
            AdminClient({"bootstrap.servers": server.kafka_address,
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mechanism,
                         "sasl.username": "alice", "sasl.password": password}
                        ).list_topics(timeout=5)
            return True
        except Exception:
            return False

    assert "SCRAM-SHA-256=iterations=4096" in configs("--describe").stdout
    configs("--alter", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=Kafka-side-pw]")
    assert "SCRAM-SHA-256=iterations=8192" in configs("--describe").stdout
    assert login("SCRAM-SHA-256", "Kafka-side-pw")
    assert login("PLAIN", ALICE_PASSWORD)  # the password itself did not change
    configs("--alter", "--delete-config", "SCRAM-SHA-256")
    assert "SCRAM-SHA-256" not in configs("--describe").stdout
    assert login("SCRAM-SHA-512", ALICE_PASSWORD)
    assert not login("SCRAM-SHA-256", "Kafka-side-pw")  # last: librdkafka retries it
