"""Read YAML keeping the line of every key, so configuration errors can point at it.

PyYAML composes the node tree (SafeLoader); we turn it into plain Python values ourselves,
which lets us record `key path -> 1-based line` and refuse duplicate keys (PyYAML would
silently keep the last one). Mapping keys are always kept as the text written in the file
(`ON:` stays the string 'ON', `01:` stays '01'); values are typed as YAML says (`count: 2`
is an int).

A configuration file comes from a person and is read unattended by every run and sensor tick,
so what could tie those up is refused before it costs anything: a file over MAX_BYTES or not a
regular file (never opened), anchors and aliases (noted as the composer meets them, never
expanded: a 1 KB "billion laughs" document would otherwise expand to gigabytes), and nesting
deeper than MAX_DEPTH (which would exhaust the recursion of the composer).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from datman_flow.config.errors import ConfigIssue, dotted

KeyPath = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"
NULL_TAG = "tag:yaml.org,2002:null"
MAX_BYTES = 256 << 10  # 256 KiB: a study file is a few KB; pure-Python YAML reads 256 KiB in ~2 s
MAX_DEPTH = 40  # nesting levels; a study file uses about 8


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
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader, a device never end
            return None, [ConfigIssue(file, None, "not a regular file")]
        if info.st_size > MAX_BYTES:
            return None, [_too_large(file, f"{info.st_size:,} bytes")]
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)  # never more, even if the file grew since
        if len(raw) > MAX_BYTES:
            return None, [_too_large(file, f"more than {MAX_BYTES:,} bytes")]
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return None, [ConfigIssue(file, None, "file not found")]
    except UnicodeDecodeError:
        return None, [ConfigIssue(file, None, "not a UTF-8 text file")]
    except OSError as exc:
        return None, [ConfigIssue(file, None, f"cannot be read: {exc.strerror or exc}")]
    return parse_yaml(text, file)


def _too_large(file: str, size: str) -> ConfigIssue:
    return ConfigIssue(file, None, f"too large for a configuration file: {size} (the limit is {MAX_BYTES:,} bytes)")


def parse_yaml(text: str, file: str) -> tuple[YamlDoc | None, list[ConfigIssue]]:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except _TooDeep as exc:
        return None, [ConfigIssue(file, exc.line, f"nested more than {MAX_DEPTH} levels deep; "
                                                  "a configuration file needs far fewer")]
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_issue(file, exc)]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue(file, None, f"YAML syntax error: {exc}")]
    finally:
        loader.dispose()
    if loader.refused:
        (line, name), more = loader.refused[0], len(loader.refused) - 1
        others = f" (and {more} more anchors or aliases)" if more else ""
        return None, [ConfigIssue(file, line, "YAML aliases (&name / *name) are not allowed in configuration "
                                              f"files: '{name}' here{others}; write the values out")]
    builder = _Builder(file)
    data = None if root is None else builder.value(root, ())
    return YamlDoc(file, data, builder.lines), builder.issues


class _TooDeep(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer notes anchors and aliases instead of resolving them (an alias
    becomes an empty value, so nothing is ever expanded) and stops at MAX_DEPTH."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.refused: list[tuple[int, str]] = []  # (1-based line, '&name' or '*name')
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self.get_event()
            self.refused.append((event.start_mark.line + 1, f"*{event.anchor}"))
            return ScalarNode(NULL_TAG, "", event.start_mark, event.end_mark)
        if event.anchor is not None:
            self.refused.append((event.start_mark.line + 1, f"&{event.anchor}"))
            event.anchor = None  # never registered, so never an alias target
        if self._depth >= MAX_DEPTH:
            raise _TooDeep(event.start_mark.line + 1)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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

    def _issue(self, node: Node, path: KeyPath, text: str) -> None:
        where = dotted(path)
        self.issues.append(ConfigIssue(self.file, node.start_mark.line + 1, f"{where}: {text}" if where else text))

    def value(self, node: Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        return [self.value(item, path + (index,)) for index, item in enumerate(node.value)]

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
