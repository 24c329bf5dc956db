"""Every route of the HTTP door over real HTTP: an operator's story (streams → messages →
offsets → groups → users → tokens), then refusals, bad input and bad tokens."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_client import JWT_SECRET, Client, b64, header

from pyggy.http_api.table import ROUTES

T = "/streams/shop/topics/orders"


@pytest.fixture(scope="module")
def admin(http_door) -> Client:
    c = Client(http_door[1])
    c.login()
    return c


def test_ping_and_openapi_need_no_login(http_door):
    c = Client(http_door[1])
    assert c.get("/ping") == (200, "pong")
    status, spec = c.get("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    for r in ROUTES:  # generated from the route table: every route is documented
        assert r.method.lower() in spec["paths"][r.path], r.path


def test_an_operator_manages_streams_topics_and_partitions(admin: Client):
    status, s = admin.post("/streams", {"name": "shop"})
    assert status == 201 and s["name"] == "shop" and s["topics"] == []
    assert admin.post("/streams", {"name": "shop"})[1]["code"] == "stream_name_already_exists"
    status, t = admin.post("/streams/shop/topics", {"name": "orders", "partitions_count": 2})
    assert status == 201 and [p["id"] for p in t["partitions"]] == [0, 1]
    assert [x["name"] for x in admin.get("/streams")[1]] == ["shop"]
    assert admin.get("/streams/shop")[1]["topics_count"] == 1
    assert admin.get(f"/streams/{s['id']}/topics")[1][0]["name"] == "orders"
    assert admin.post(f"{T}/partitions", {"partitions_count": 1})[0] == 201
    assert admin.get(T)[1]["partitions_count"] == 3
    assert admin.delete(f"{T}/partitions?partitions_count=1")[0] == 204
    assert admin.get(T)[1]["partitions_count"] == 2
    assert admin.post("/streams", {"name": "tmp"})[0] == 201
    assert admin.put("/streams/tmp", {"name": "tmp2"})[0] == 204
    assert admin.post("/streams/tmp2/topics", {"name": "x"})[0] == 201
    assert admin.put("/streams/tmp2/topics/x", {"name": "y", "message_expiry": 60_000_000})[0] \
        == 204
    assert admin.get("/streams/tmp2/topics/y")[1]["message_expiry"] == 60_000_000
    assert admin.delete("/streams/tmp2/topics/y/purge")[0] == 204
    assert admin.delete("/streams/tmp2/topics/y")[0] == 204
    assert admin.delete("/streams/tmp2/purge")[0] == 204
    assert admin.delete("/streams/tmp2")[0] == 204
    status, err = admin.get("/streams/tmp2")
    assert status == 404 and err["code"] == "stream_name_not_found" and err["field"] == "stream_id"


def test_messages_round_trip_with_headers_offsets_and_segments(admin: Client):
    status, sent = admin.send(T, 1, {"payload": b64("first"), "user_headers": [
        header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]},
        {"id": 42, "payload": b64(b"\x00\xffbin")})
    assert status == 201
    assert sent["confirmations"][0]["partition_id"] == 1
    base = sent["confirmations"][0]["base_offset"]
    status, polled = admin.get(f"{T}/messages?partition_id=1&kind=offset&value={base}&count=10")
    assert status == 200 and polled["count"] == 2
    first, second = polled["messages"]
    assert base64.b64decode(first["payload"]) == b"first"
    assert base64.b64decode(first["user_headers"][0]["key"]["value"]) == b"traceparent"
    assert second["header"]["id"] == 42 and second["header"]["offset"] == base + 1
    assert base64.b64decode(second["payload"]) == b"\x00\xffbin"
    # paged: one message per request, by timestamp too
    assert admin.get(f"{T}/messages?partition_id=1&count=1")[1]["count"] == 1
    ts = first["header"]["timestamp"]
    assert admin.get(f"{T}/messages?partition_id=1&kind=timestamp&value={ts}&count=5")[1][
        "count"] == 2
    # consumer offsets
    assert admin.get(f"{T}/consumer-offsets?consumer_id=7&partition_id=1")[0] == 404
    assert admin.put(f"{T}/consumer-offsets", {"consumer_id": 7, "partition_id": 1,
                                                "offset": base})[0] == 204
    assert admin.get(f"{T}/consumer-offsets?consumer_id=7&partition_id=1")[1] == {
        "partition_id": 1, "current_offset": base + 1, "stored_offset": base}
    assert admin.delete(f"{T}/consumer-offsets/7?partition_id=1")[0] == 204
    assert admin.get(f"{T}/consumer-offsets?consumer_id=7&partition_id=1")[0] == 404
    # auto_commit stores the last polled offset
    admin.get(f"{T}/messages?partition_id=1&count=10&consumer_id=8&auto_commit=true")
    assert admin.get(f"{T}/consumer-offsets?consumer_id=8&partition_id=1")[1][
        "stored_offset"] == base + 1
    status, segments = admin.get(f"{T}/partitions/1/segments")
    assert status == 200 and segments[0]["tier"] == "local" and segments[-1]["next_offset"] == \
        base + 2
    assert admin.delete(f"{T}/partitions/1?segments_count=1")[0] == 204


def test_consumer_groups(admin: Client):
    status, g = admin.post(f"{T}/consumer-groups", {"name": "billing"})
    assert status == 201 and g["name"] == "billing" and g["members"] == []
    assert [x["name"] for x in admin.get(f"{T}/consumer-groups")[1]] == ["billing"]
    assert admin.get(f"{T}/consumer-groups/billing")[1]["partitions_count"] == 2
    assert admin.delete(f"{T}/consumer-groups/billing")[0] == 204
    assert admin.get(f"{T}/consumer-groups/billing")[1]["code"] == \
        "consumer_group_name_not_found"


def test_system_routes(admin: Client):
    status, stats = admin.get("/stats")
    assert status == 200 and stats["streams_count"] >= 1 and stats["process_id"] > 0
    assert admin.get("/clients") == (200, [])
    assert admin.get("/clients/12345")[0] == 404
    status, meta = admin.get("/cluster/metadata")
    assert status == 200 and meta["nodes"][0]["endpoints"]["http"] > 0


def test_users_permissions_and_refusals(http_door, admin: Client):
    reader = {"global": {"read_streams": True}, "streams": {
        "0": {"read_stream": True, "read_topics": True, "poll_messages": True, "topics": None}}}
    status, u = admin.post("/users", {"username": "ann", "password": "ann-pass-1",
                                      "status": "active", "permissions": reader})
    assert status == 201 and u["permissions"]["global"]["read_streams"] is True
    assert admin.post("/users", {"username": "ann", "password": "other-pass"})[1]["code"] == \
        "user_already_exists"
    assert "ann" in [x["username"] for x in admin.get("/users")[1]]
    ann = Client(http_door[1])
    ann.login("ann", "ann-pass-1")
    assert ann.get("/streams")[0] == 200
    assert ann.get(f"{T}/messages?partition_id=1&count=1")[0] == 200
    status, err = ann.post("/streams", {"name": "nope"})
    assert status == 403 and err["code"] == "unauthorized"
    assert ann.send(T, 0, {"payload": b64("x")})[0] == 403
    assert ann.get("/users")[0] == 403
    assert ann.get("/stats")[0] == 403
    assert ann.get(f"/users/{u['id']}")[0] == 200  # one's own record
    # permissions change: now ann may send
    reader["streams"]["0"]["send_messages"] = True
    assert admin.put(f"/users/{u['id']}/permissions", {"permissions": reader})[0] == 204
    assert ann.send(T, 0, {"payload": b64("from ann")})[0] == 201
    # own password needs the current one
    assert ann.put(f"/users/{u['id']}/password", {"current_password": "wrong",
                                                   "new_password": "n"})[0] == 401
    assert ann.put(f"/users/{u['id']}/password", {"current_password": "ann-pass-1",
                                                   "new_password": "ann-pass-2"})[0] == 204
    assert admin.put(f"/users/{u['id']}", {"status": "inactive"})[0] == 204
    assert ann.get("/streams")[0] == 401  # an inactive user's token stops working
    assert admin.delete(f"/users/{u['id']}")[0] == 204
    assert admin.get(f"/users/{u['id']}")[0] == 404
    # a new user gets the recycled id: ann's old token must not act as that user
    status, bob = admin.post("/users", {"username": "bob", "password": "bob-pass-1",
                                        "permissions": reader})
    assert status == 201 and bob["id"] == u["id"]
    assert ann.get("/streams")[0] == 401


def test_personal_access_tokens_refresh_and_logout(http_door):
    c = Client(http_door[1])
    c.login()
    status, pat = c.post("/personal-access-tokens", {"name": "scraper", "expiry": 0})
    assert status == 201 and pat["token"]
    assert [t["name"] for t in c.get("/personal-access-tokens")[1]] == ["scraper"]
    by_pat = Client(http_door[1])
    status, identity = by_pat.post("/personal-access-tokens/login", {"token": pat["token"]})
    assert status == 200 and identity["user_id"] == 0
    assert Client(http_door[1], pat["token"]).get("/streams")[0] == 200  # bearer PAT
    old = c.token
    status, refreshed = c.post("/users/refresh-token", {"token": old})
    assert status == 200
    assert Client(http_door[1], old).get("/streams")[0] == 401  # swapped: the old one is gone
    c.token = refreshed["access_token"]["token"]
    assert c.delete("/personal-access-tokens/scraper")[0] == 204
    assert Client(http_door[1], pat["token"]).get("/streams")[0] == 401
    assert c.delete("/users/logout")[0] == 204
    status, err = c.get("/streams")
    assert status == 401 and err["code"] == "invalid_access_token"


def test_bad_credentials_and_tokens(http_door):
    c = Client(http_door[1])
    status, err = c.post("/users/login", {"username": "iggy", "password": "wrong"})
    assert status == 401 and err["code"] == "invalid_credentials"
    assert c.get("/streams")[1]["code"] == "access_token_missing"
    forged = jwt.encode({"sub": "0", "jti": "x", "exp": 2**40},
                        "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    for token in ("garbage", "a.b.c", forged):
        status, err = Client(http_door[1], token).get("/streams")
        assert status == 401, token
    now = int(time.time())
    created = Client(http_door[1], Client(http_door[1]).login()["access_token"]["token"]).get(
        "/users/0")[1]["created_at"]
    claims = {"sub": "0", "jti": "e", "iat": now - 7200, "exp": now - 3600, "uca": created,
              "iss": "iggy.apache.org", "aud": "iggy.apache.org"}
    expired = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    status, err = Client(http_door[1], expired).get("/streams")
    assert status == 401 and err["code"] == "invalid_access_token"
    claims["exp"] = now + 3600  # the same token, valid: the secret really is the server's
    assert Client(http_door[1], jwt.encode(claims, JWT_SECRET, "HS256")).get("/streams")[0] == 200


@pytest.mark.parametrize("raw, field", [
    (b"{not json", "body"), (b"[1, 2]", "body"), (b'{"name": 5}', "name"),
    (b'{"name": ""}', "name"), (b"{}", "name"), (b'{"name": "' + b"x" * 300 + b'"}', "name"),
    (b"[" * 5000 + b"]" * 5000, "body"),
])
def test_bad_json_is_a_400_naming_the_field(admin: Client, raw: bytes, field: str):
    status, err = admin.call("POST", "/streams", raw=raw)
    assert status == 400 and err["field"] == field and err["code"] == "invalid_format"


def test_bad_message_bodies(admin: Client):
    for body, field in [({"messages": []}, "messages"), ({"messages": [{"payload": "%%"}]},
                        "payload"), ({"messages": [{"payload": b64("x"), "user_headers": [1]}]},
                        "user_headers"), ({"partitioning": {"kind": "nope"}, "messages": []},
                        "kind")]:
        status, err = admin.post(f"{T}/messages", body)
        assert status == 400 and err["field"] == field, body
    assert admin.get(f"{T}/messages?count=abc")[1]["field"] == "count"
    assert admin.get(f"{T}/messages?kind=sideways")[1]["field"] == "kind"
    assert admin.get(f"{T}/messages?partition_id=9")[0] == 404


def test_oversized_body_is_refused_with_413(admin: Client):
    status, err = admin.call("POST", "/streams", raw=b'{"name": "' + b"x" * 70_000 + b'"}')
    assert status == 413 and err["code"] == "payload_too_large"
    assert admin.get("/ping")[0] == 200  # the server carries on


def test_cors_preflight_and_headers(http_door):
    c = Client(http_door[1])
    status, _ = c.call("OPTIONS", "/streams", headers={
        "Origin": "http://console.example", "Access-Control-Request-Method": "GET"})
    assert status == 204
    assert c.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in c.headers["Access-Control-Allow-Headers"]
    c.call("GET", "/ping", headers={"Origin": "http://console.example"})
    assert c.headers["Access-Control-Allow-Origin"] == "*"


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
_BODY_ROUTES = [(r.method, r.path.replace("{stream_id}", "shop").replace("{topic_id}", "orders")
                 .replace("{user_id}", "0").replace("{partition_id}", "0"))
                for r in ROUTES if r.body and "login" not in r.path
                and "refresh" not in r.path and "password" not in r.path]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(_BODY_ROUTES), body=st.dictionaries(
    st.sampled_from(["name", "partitions_count", "messages", "partitioning", "permissions",
                     "offset", "consumer_id", "status", "username", "options", "expiry"]),
    _JSON, max_size=5))
def test_random_json_bodies_never_get_a_500(http_door, admin, route, body):
    c = Client(http_door[1], admin.token)
    method, path = route
    if path.startswith("/users/0") or "permissions" in path:
        path = "/users/4000000000"  # never change the root user
    status, reply = c.call(method, path, body)
    assert status < 500, (route, body, reply)
    if status >= 400:
        assert set(reply) == {"id", "code", "reason", "field"}


def test_basic_authentication_for_scrapers_and_scripts(http_door):
    good = "Basic " + b64("iggy:iggy")
    assert Client(http_door[1]).call("GET", "/streams", headers={"Authorization": good})[0] \
        == 200
    for bad in ("Basic " + b64("iggy:wrong"), "Basic " + b64("no-colon"), "Basic %%%"):
        status, err = Client(http_door[1]).call("GET", "/streams", headers={"Authorization": bad})
        assert status == 401 and err["code"] == "invalid_credentials", bad
