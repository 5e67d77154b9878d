"""Synthesize a plausible value for a JSON Schema, deterministically from the conversation text.

Owns forced-tool ``input`` synthesis: every choice (enum member, number, boolean) comes from a hash of the
conversation text and the property's path, so the same prompt always classifies the same way while
different prompts spread over the options. Supports the schema subset tool definitions use in practice
(type, enum, const, properties/required, items, additionalProperties, anyOf/oneOf, min/max); ``$ref`` and
exotic keywords fall back to an empty value. Pure: no I/O, no state.
"""

from __future__ import annotations

import hashlib
from typing import Any

_MAX_DEPTH = 8
_SHORT_TEXT = ("a concise summary of the request", "the user asks for help", "routine question", "see details")


def fill_schema(schema: dict[str, Any], text: str) -> Any:
    """A value valid for ``schema`` (within the supported subset), chosen by hashing ``text``."""
    return _fill(schema, text, "$", 0)


def _fraction(text: str, path: str) -> float:
    """A stable number in [0, 1) for this text at this schema path."""
    digest = hashlib.sha256(f"{path}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(options: list[Any], text: str, path: str) -> Any:
    return options[int(_fraction(text, path) * len(options))]


def _type_of(schema: dict[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        # ["string", "null"]: produce the non-null member, a null answer teaches a test nothing.
        declared = next((t for t in declared if t != "null"), "null")
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _fill(schema: Any, text: str, path: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return _pick(enum, text, path)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _fill((non_null or options)[0], text, path, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _fill_object(schema, text, path, depth)
    if kind == "array":
        return _fill_array(schema, text, path, depth)
    if kind == "string":
        return _fill_string(schema, text, path)
    if kind in ("number", "integer"):
        return _fill_number(schema, text, path, integer=kind == "integer")
    if kind == "boolean":
        return _fraction(text, path) < 0.5
    if kind == "null":
        return None
    return schema.get("default")


def _fill_object(schema: dict[str, Any], text: str, path: str, depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    properties = schema.get("properties")
    if isinstance(properties, dict):
        # All properties, required or not: a fuller answer exercises more of the caller's parsing.
        for name, sub in properties.items():
            result[name] = _fill(sub, text, f"{path}.{name}", depth + 1)
    extra = schema.get("additionalProperties")
    if not result and isinstance(extra, dict):
        names = schema.get("propertyNames", {}).get("enum") if isinstance(schema.get("propertyNames"), dict) else None
        keys = list(names) if isinstance(names, list) and names else ["item_1", "item_2", "item_3"]
        for key in keys:
            result[str(key)] = _fill(extra, text, f"{path}.{key}", depth + 1)
    return result


def _fill_array(schema: dict[str, Any], text: str, path: str, depth: int) -> list[Any]:
    low = schema.get("minItems", 1)
    high = schema.get("maxItems", max(low, 2))
    size = max(0, min(max(low, 1), high)) if isinstance(low, int) and isinstance(high, int) else 1
    items = schema.get("items", {})
    values: list[Any] = []
    for index in range(size):
        value = _fill(items, text, f"{path}[{index}]", depth + 1)
        if schema.get("uniqueItems") and value in values:
            continue
        values.append(value)
    return values


def _fill_string(schema: dict[str, Any], text: str, path: str) -> str:
    value = _pick(list(_SHORT_TEXT), text, path)
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and max_length >= 0:
        value = value[:max_length]
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value = value.ljust(min_length, ".")
    return value


def _fill_number(schema: dict[str, Any], text: str, path: str, *, integer: bool) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low = float(low) if isinstance(low, (int, float)) else None
    high = float(high) if isinstance(high, (int, float)) else None
    if low is None and high is None:
        low, high = (0.0, 10.0) if integer else (0.0, 1.0)
    elif low is None:
        low = high - (10.0 if integer else 1.0)  # type: ignore[operator]
    elif high is None:
        high = low + (10.0 if integer else 1.0)
    assert low is not None and high is not None
    # Stay strictly inside exclusive bounds by keeping away from both ends.
    fraction = 0.05 + 0.9 * _fraction(text, path)
    value = low + (high - low) * fraction
    if integer:
        return max(int(low), min(int(high), round(value)))
    return round(value, 3)
