"""Read YAML keeping the line of every key, so configuration errors can point at it.

PyYAML composes the node tree (SafeLoader); we turn it into plain Python values ourselves,
which lets us record `key path -> 1-based line` and refuse duplicate keys (PyYAML would
silently keep the last one). Mapping keys are always kept as the text written in the file
(`ON:` stays the string 'ON', `01:` stays '01'); values are typed as YAML says (`count: 2`
is an int).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

from datman_flow.config.errors import ConfigIssue, dotted

KeyPath = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, eq=False)
class YamlDoc:
    file: str
    data: Any  # None for an empty file
    lines: dict[KeyPath, int]  # key path (keys and list indices) -> 1-based line

    def line(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its closest ancestor that has one."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def read_yaml(path: Path) -> tuple[YamlDoc | None, list[ConfigIssue]]:
    """Parse a file. Returns (None, issues) when it cannot be read or is not valid YAML;
    otherwise the document and any duplicate-key or value issues (may be empty)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigIssue(file, None, "file not found")]
    except UnicodeDecodeError:
        return None, [ConfigIssue(file, None, "not a UTF-8 text file")]
    except OSError as exc:
        return None, [ConfigIssue(file, None, f"cannot be read: {exc.strerror or exc}")]
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str) -> tuple[YamlDoc | None, list[ConfigIssue]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_issue(file, exc)]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue(file, None, f"YAML syntax error: {exc}")]
    builder = _Builder(file)
    data = None if root is None else builder.value(root, ())
    return YamlDoc(file, data, builder.lines), builder.issues


def _syntax_issue(file: str, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    message = f"YAML syntax error: {exc.problem or exc.context or 'invalid YAML'}"
    if exc.problem and exc.context:
        at = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f" ({exc.context}{at})"
    if "\\t" in message or "\t" in message:
        message += "; indent with spaces, not tabs"
    return ConfigIssue(file, mark.line + 1 if mark else None, message)


class _Builder:
    """Node tree -> plain values, recording lines and collecting issues."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = SafeConstructor()
        self._open: set[int] = set()  # nodes being built (guards recursive aliases)

    def _issue(self, node: Node, path: KeyPath, text: str) -> None:
        where = dotted(path)
        self.issues.append(ConfigIssue(self.file, node.start_mark.line + 1, f"{where}: {text}" if where else text))

    def value(self, node: Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._open:
            self._issue(node, path, "an alias refers to itself")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            return [self.value(item, path + (index,)) for index, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self._issue(node, path, f"cannot read value '{node.value}': {problem}")
            return None

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == MERGE_TAG:
                self._issue(key_node, path, "merge keys ('<<') are not supported; write the keys out")
                continue
            if not isinstance(key_node, ScalarNode):
                self._issue(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            key = key_node.value
            if key in first_line:
                self._issue(key_node, path, f"duplicate key '{key}' (first given at line {first_line[key]})")
                continue
            first_line[key] = line
            self.lines[path + (key,)] = line
            out[key] = self.value(value_node, path + (key,))
        return out
