"""The route table: the single registry of HTTP routes (Iggy 0.9's, plus pyggy's segment view).
The server binds it, the OpenAPI document is generated from it, metrics label by `name`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pyggy.http_api.context import Call
from pyggy.http_api.handlers import Answer, auth, consumers, messages, streams, system, users


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Callable[[Call], Awaitable[Answer]]
    name: str  # metrics label, OpenAPI operationId
    summary: str
    pre_auth: bool = False
    body: bool = False  # takes a JSON body


_S = "/streams/{stream_id}"
_T = _S + "/topics/{topic_id}"

ROUTES: list[Route] = [
    Route("GET", "/ping", system.ping, "ping", "Liveness", pre_auth=True),
    Route("POST", "/users/login", auth.login, "user.login", "Log in with a password",
          pre_auth=True, body=True),
    Route("POST", "/users/refresh-token", auth.refresh, "user.refresh_token",
          "Swap a valid access token for a new one", pre_auth=True, body=True),
    Route("DELETE", "/users/logout", auth.logout, "user.logout", "Revoke the access token"),
    Route("POST", "/personal-access-tokens/login", auth.login_with_token,
          "personal_access_token.login", "Log in with a personal access token", pre_auth=True,
          body=True),
    Route("GET", "/personal-access-tokens", auth.list_tokens, "personal_access_token.list",
          "The caller's personal access tokens"),
    Route("POST", "/personal-access-tokens", auth.create_token, "personal_access_token.create",
          "Create a personal access token (returned once)", body=True),
    Route("DELETE", "/personal-access-tokens/{name}", auth.delete_token,
          "personal_access_token.delete", "Delete a personal access token"),
    Route("GET", "/stats", system.stats, "stats", "Server statistics"),
    Route("GET", "/clients", system.clients, "client.list", "Connected clients"),
    Route("GET", "/clients/{client_id}", system.client, "client.get", "One client"),
    Route("GET", "/cluster/metadata", system.cluster_metadata, "cluster.metadata",
          "Cluster nodes"),
    Route("GET", "/users", users.get_users, "user.list", "Users"),
    Route("POST", "/users", users.create_user, "user.create", "Create a user", body=True),
    Route("GET", "/users/{user_id}", users.get_user, "user.get", "One user with permissions"),
    Route("PUT", "/users/{user_id}", users.update_user, "user.update",
          "Rename or (de)activate a user", body=True),
    Route("DELETE", "/users/{user_id}", users.delete_user, "user.delete", "Delete a user"),
    Route("PUT", "/users/{user_id}/password", users.change_password, "user.password",
          "Change a password", body=True),
    Route("PUT", "/users/{user_id}/permissions", users.update_permissions, "user.permissions",
          "Replace a user's permissions", body=True),
    Route("GET", "/streams", streams.get_streams, "stream.list", "Streams"),
    Route("POST", "/streams", streams.create_stream, "stream.create", "Create a stream",
          body=True),
    Route("GET", _S, streams.get_stream, "stream.get", "One stream with its topics"),
    Route("PUT", _S, streams.update_stream, "stream.update", "Rename a stream", body=True),
    Route("DELETE", _S, streams.delete_stream, "stream.delete", "Delete a stream"),
    Route("DELETE", _S + "/purge", streams.purge_stream, "stream.purge",
          "Remove every message of a stream"),
    Route("GET", _S + "/topics", streams.get_topics, "topic.list", "Topics of a stream"),
    Route("POST", _S + "/topics", streams.create_topic, "topic.create", "Create a topic",
          body=True),
    Route("GET", _T, streams.get_topic, "topic.get", "One topic with its partitions"),
    Route("PUT", _T, streams.update_topic, "topic.update", "Rename a topic, change options",
          body=True),
    Route("DELETE", _T, streams.delete_topic, "topic.delete", "Delete a topic"),
    Route("DELETE", _T + "/purge", streams.purge_topic, "topic.purge",
          "Remove every message of a topic"),
    Route("POST", _T + "/partitions", streams.create_partitions, "partition.create",
          "Add partitions", body=True),
    Route("DELETE", _T + "/partitions", streams.delete_partitions, "partition.delete",
          "Remove the last partitions (?partitions_count=)"),
    Route("DELETE", _T + "/partitions/{partition_id}", streams.delete_segments,
          "segment.delete", "Delete a partition's oldest segments (?segments_count=)"),
    Route("GET", _T + "/partitions/{partition_id}/segments", streams.get_segments,
          "segment.list", "A partition's segments with their tier (pyggy)"),
    Route("GET", _T + "/messages", messages.poll, "message.poll",
          "Poll messages (?partition_id, kind, value, count, consumer_id, auto_commit)"),
    Route("POST", _T + "/messages", messages.send, "message.send", "Send messages", body=True),
    Route("GET", _T + "/consumer-offsets", consumers.get_offset, "consumer_offset.get",
          "A consumer's stored offset (?consumer_id, partition_id)"),
    Route("PUT", _T + "/consumer-offsets", consumers.store_offset, "consumer_offset.store",
          "Store a consumer's offset", body=True),
    Route("DELETE", _T + "/consumer-offsets/{consumer_id}", consumers.delete_offset,
          "consumer_offset.delete", "Delete a consumer's stored offset"),
    Route("GET", _T + "/consumer-groups", consumers.get_groups, "consumer_group.list",
          "Consumer groups of a topic"),
    Route("POST", _T + "/consumer-groups", consumers.create_group, "consumer_group.create",
          "Create a consumer group", body=True),
    Route("GET", _T + "/consumer-groups/{group_id}", consumers.get_group, "consumer_group.get",
          "One consumer group with members"),
    Route("GET", _T + "/lag", consumers.get_lag, "consumer.lag",
          "Every consumer of the topic on both doors with its lag per partition (pyggy)"),
    Route("DELETE", _T + "/consumer-groups/{group_id}", consumers.delete_group,
          "consumer_group.delete", "Delete a consumer group"),
]
