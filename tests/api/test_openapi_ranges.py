"""Every integer and number a client can send — query, path, header and body, at any
depth — has a documented minimum and maximum (issue #14: 2^63 answered 500). The
document is the server's own `/v1/openapi.json`; the ranges are enforced by the same
schemas and path converters that produce it."""
from __future__ import annotations


def _walk(schema: dict, where: str, components: dict, seen=()):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _walk(components[name], f"{where}<{name}>", components, seen + (name,))
        return
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            yield from _walk(sub, where, components, seen)
    if schema.get("type") in ("integer", "number") and ("minimum" not in schema or "maximum" not in schema):
        yield where
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{where}.{name}", components, seen)
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{where}[]", components, seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{where}{{}}", components, seen)


def unbounded_inputs(spec: dict) -> list[str]:
    components = spec.get("components", {}).get("schemas", {})
    out = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            for p in shared + op.get("parameters", []):
                out += _walk(p.get("schema", {}), f"{method.upper()} {path} {p['in']}:{p['name']}", components)
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                out += _walk(media.get("schema", {}), f"{method.upper()} {path} body", components)
    return out


def test_every_integer_input_has_a_range(app):
    spec = app.test_client().get("/v1/openapi.json").get_json()
    assert unbounded_inputs(spec) == []


def test_the_walker_finds_an_unbounded_integer():
    spec = {"paths": {"/x/{n}": {"parameters": [{"in": "path", "name": "n", "schema": {"type": "integer",
                                                                                         "minimum": 0}}],
                                 "post": {"requestBody": {"content": {"application/json": {"schema": {
                                     "$ref": "#/components/schemas/B"}}}}}}},
            "components": {"schemas": {"B": {"properties": {"xs": {"items": {"type": "number", "maximum": 1}}}}}}}
    assert unbounded_inputs(spec) == ["POST /x/{n} path:n", "POST /x/{n} body<B>.xs[]"]
