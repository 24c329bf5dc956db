"""The OpenAPI 3.1 document, generated from the route table (never written by hand)."""

from __future__ import annotations

import re

from pyggy.http_api.table import ROUTES

_PARAM = re.compile(r"{(\w+)}")
_ERROR = {"description": "Iggy error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


def document(version: str) -> dict:
    paths: dict[str, dict] = {}
    for r in ROUTES:
        op: dict = {"operationId": r.name, "summary": r.summary,
                    "responses": {"200": {"description": "OK"}, "400": _ERROR, "401": _ERROR,
                                  "403": _ERROR, "404": _ERROR}}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _PARAM.findall(r.path)]
        if params:
            op["parameters"] = params
        if r.body:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"type": "object"}}}}
        if r.pre_auth:
            op["security"] = []
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "pyggy HTTP API (Iggy 0.9 REST)", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT or personal access token"}},
            "schemas": {"Error": {"type": "object", "properties": {
                "id": {"type": "integer"}, "code": {"type": "string"},
                "reason": {"type": "string"}, "field": {"type": ["string", "null"]}}}},
        },
        "security": [{"bearer": []}],
    }
