"""YAML with positions: decode a policy file into plain data and remember where every value came from.

Owns the link between a value's path (``("rules", 2, "when", "category")``) and its file, line and column,
so every validation error can point at the spot to fix. Duplicate keys, which plain YAML loading silently
merges, are errors here.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import yaml

from router.errors import ConfigError

Path_ = tuple[str | int, ...]


class Position(msgspec.Struct, frozen=True):
    file: str
    line: int
    """1-based."""
    column: int
    """1-based."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a policy, where it is and how to fix it."""

    position: Position
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.position}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


class PolicyError(ConfigError):
    """The policy set is invalid. Carries every problem found, each with file:line:column."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SourceFile:
    """A decoded YAML file: its data and the position of every mapping key and value."""

    def __init__(self, name: str, data: Any, positions: dict[Path_, Position]) -> None:
        self.name = name
        self.data = data
        self.positions = positions

    def at(self, path: Path_) -> Position:
        """The position of ``path``, or of its closest ancestor that has one."""
        path = tuple(path)
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, Position(self.name, 1, 1))


def _mark(name: str, node: yaml.Node) -> Position:
    return Position(name, node.start_mark.line + 1, node.start_mark.column + 1)


def parse(name: str, text: str) -> SourceFile:
    """Decode YAML text. Raises PolicyError (with position) on syntax errors and duplicate keys."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([Problem(Position(name, line, column), f"not valid YAML: {exc.problem}")]) from None
    positions: dict[Path_, Position] = {}
    problems: list[Problem] = []

    def build(node: yaml.Node | None, path: Path_) -> Any:
        if node is None:
            return None
        positions[path] = _mark(name, node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(Problem(_mark(name, key_node), "mapping keys must be plain strings"))
                    continue
                key = str(_scalar(key_node))
                if key in out:
                    problems.append(Problem(_mark(name, key_node), f"duplicate key {key!r}", "each key may appear once"))
                positions[(*path, key)] = _mark(name, key_node)
                out[key] = build(value_node, (*path, key))
                positions[(*path, key)] = _mark(name, key_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, (*path, index)) for index, child in enumerate(node.value)]
        return _scalar(node)

    data = build(root, ())
    if problems:
        raise PolicyError(problems)
    return SourceFile(name, data, positions)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node)
    finally:
        loader.dispose()


def convert(source: SourceFile, kind: type, path: Path_ = ()) -> Any:
    """``msgspec.convert`` of the data at ``path``, with a validation error turned into a positioned Problem."""
    data = source.data
    for part in path:
        data = data[part]
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        where = _error_path(str(exc))
        unknown = _unknown_field(str(exc))
        if unknown:
            where = (*where, unknown)
        where = _resolve(source, (*path, *where))
        raise PolicyError([Problem(source.at(where), _message(str(exc)), _hint(str(exc)))]) from None


WILDCARD = "..."
"""msgspec writes a dict value's key as ``[...]``: which key is not in the message."""
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _error_path(message: str) -> Path_:
    """``... - at `$.rules[2].when.category``` -> ``("rules", 2, "when", "category")``."""
    marker = "at `$"
    if marker not in message:
        return ()
    raw = message.split(marker, 1)[1].rstrip("`")
    parts: list[str | int] = []
    for name, index in _PATH_PART.findall(raw):
        parts.append(name if name else (WILDCARD if index == WILDCARD else int(index)))
    return tuple(parts)


def _resolve(source: SourceFile, path: Path_) -> Path_:
    """Fill ``[...]`` wildcards with the first key whose full path exists (for an unknown field, the key
    that actually holds it), so the problem points at the line to fix."""
    if WILDCARD not in path:
        return path
    for known in source.positions:
        if len(known) == len(path) and all(p == WILDCARD or p == k for p, k in zip(path, known)):
            return known
    return path[: path.index(WILDCARD)]


def _unknown_field(message: str) -> str | None:
    prefix = "Object contains unknown field `"
    if not message.startswith(prefix):
        return None
    return message[len(prefix) :].split("`", 1)[0]


def _message(message: str) -> str:
    return message.split(" - at `$", 1)[0]


def _hint(message: str) -> str:
    if message.startswith("Object contains unknown field"):
        return "check the spelling against policies/README.md; unknown keys are errors so typos cannot pass"
    if message.startswith("Expected"):
        return "see the key's type in policies/README.md or policies/schema/<file>.schema.json"
    return ""
