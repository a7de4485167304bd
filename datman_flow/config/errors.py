"""Configuration problems as values: `file:line: what is wrong`, and the wording of them.

`issues_from_validation` turns a pydantic ValidationError raised on a YAML document into
issues a study lead can act on: the line of the offending key, the dotted path to it, and a
plain-language message (with a `did you mean` suggestion for typos).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from datman_flow.suggest import did_you_mean

if TYPE_CHECKING:
    from datman_flow.config.yaml_lines import YamlDoc


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    """The configuration was refused; `.issues` lists every problem found."""

    def __init__(self, issues: Iterable[ConfigIssue]):
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def dotted(path: Sequence[str | int]) -> str:
    """('sites', 'CMH', 'tags') -> 'sites.CMH.tags'; list indices as [i]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe(value: Any) -> str:
    """A value as a study lead would name it in their YAML."""
    if isinstance(value, bool):
        return f"yes/no value {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return f"{type(value).__name__} {value}"


def issues_from_validation(exc: ValidationError, doc: YamlDoc, root_type: Any) -> list[ConfigIssue]:
    return [_issue(error, doc, root_type) for error in exc.errors()]


def _issue(error: Any, doc: YamlDoc, root_type: Any) -> ConfigIssue:
    loc = tuple(error["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # the dict key itself was refused
    path = _clean(loc[:-1] if is_key else loc, doc.data)
    where = dotted(path[:-1] if is_key else path)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        model = _model_at(root_type, path[:-1])
        allowed = list(model.model_fields) if model else []
        return ConfigIssue(doc.file, doc.line(path), f"unknown key '{key}'{did_you_mean(key, allowed)}")
    if kind == "missing":
        where = dotted(path[:-1])
        text = f"missing required key '{path[-1]}'"
    elif kind == "config":
        text = error["ctx"]["reason"]
    elif value is None:
        text = "no value given"
    elif kind == "string_type":
        text = f"expected text, got {describe(value)}; put the value in quotes"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        text = f"expected a whole number, got {describe(value)}"
    elif kind == "greater_than_equal":
        text = f"must be {error['ctx']['ge']} or more, got {describe(value)}"
    elif kind == "greater_than":
        text = f"must be more than {error['ctx']['gt']:g}, got {describe(value)}"
    elif kind in ("float_type", "float_parsing"):
        text = f"expected a number, got {describe(value)}"
    elif kind == "finite_number":
        text = f"must be a finite number, got {describe(value)}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        text = f"expected a mapping (indented 'key: value' lines), got {describe(value)}"
    elif kind == "list_type":
        text = f"expected a list, got {describe(value)}"
    elif kind == "literal_error":
        text = f"got {describe(value)}; expected {error['ctx']['expected']}"
    elif kind == "too_short":
        text = "must not be empty"
    elif kind == "value_error":  # a model's own check (e.g. config/bids_block.py): its sentence as it is
        text = str(error["msg"]).removeprefix("Value error, ")
    else:
        text = error["msg"]
    return ConfigIssue(doc.file, doc.line(path), f"{where}: {text}" if where else text)


def _clean(loc: tuple, data: Any) -> tuple[str | int, ...]:
    """Drop list indices pydantic added where the YAML held a single value (str -> [str])."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(part, int) and not isinstance(current, list):
            continue
        out.append(part)
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            current = None
    return tuple(out)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(tp: Any, path: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping found at `path` under `tp`."""
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (dict, list, tuple):
            tp = get_args(tp)[0 if get_origin(tp) is tuple else -1]  # value / item type
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
