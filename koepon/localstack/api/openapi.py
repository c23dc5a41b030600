"""`GET /rest/v1/`: an OpenAPI 3 description generated from the schema cache."""

from __future__ import annotations

from .schema import SchemaCache

_TYPES = {
    "integer": {"type": "integer", "format": "int32"}, "bigint": {"type": "integer", "format": "int64"},
    "smallint": {"type": "integer"}, "numeric": {"type": "number"}, "boolean": {"type": "boolean"},
    "uuid": {"type": "string", "format": "uuid"}, "text": {"type": "string"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"}, "jsonb": {}, "json": {},
}


def _schema(pg_type: str) -> dict:
    if pg_type.endswith("[]"):
        return {"type": "array", "items": _schema(pg_type[:-2])}
    return dict(_TYPES.get(pg_type, {"type": "string"}))


def _error() -> dict:
    return {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build(cache: SchemaCache, server_url: str) -> dict:
    paths: dict = {}
    for name, rel in sorted(cache.relations.items()):
        props = {c.name: {**_schema(c.type), "description": c.comment or ""} for c in rel.columns}
        paths[f"/{name}"] = {"get": {
            "summary": (rel.comment or name).split("\n")[0], "description": rel.comment or "",
            "tags": ["views"],
            "parameters": [{"name": "select", "in": "query", "schema": {"type": "string"}, "required": False},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0},
                            "required": False},
                           {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0},
                            "required": False}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "array", "items": {"type": "object", "properties": props}}}}},
                "default": _error()}}}
    for name, fns in sorted(cache.functions.items()):
        fn = fns[0]
        props = {a.name: _schema(a.type) for a in fn.args if a.name}
        required = sorted(a.name for a in fn.args if a.name and not a.has_default)
        body_schema: dict = {"type": "object", "properties": props}
        if required:
            body_schema["required"] = required
        ok = {"204": {"description": "No Content"}} if fn.kind == "void" else \
            {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}}}
        paths[f"/rpc/{name}"] = {"post": {
            "summary": (fn.comment or name).split("\n")[0], "description": fn.comment or "",
            "tags": ["rpc"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}},
            "responses": {**ok, "default": _error()}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Koepon API", "version": "1", "description": "Koepon's public RPCs and views."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["code", "message", "details", "hint"],
                                             "properties": {"code": {"type": "string"},
                                                            "message": {"type": "string"},
                                                            "details": {"type": "string", "nullable": True},
                                                            "hint": {"type": "string", "nullable": True}}}},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    }
