"""Configuration mistakes as one line each: where (file, key path) and which rule was broken.

pydantic reports every problem of a model with its location and a sentence meant for
programmers ("Input should be greater than or equal to 1"); a person editing a YAML
file wants the key path and the rule: ``data.dedup.buckets: must be >= 1 (got 0)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration that cannot be used; ``str()`` is one line naming the input and the rule."""


class SettingRule(ValueError):
    """A broken cross-field rule, raised inside a model validator; blames one setting of that section."""

    def __init__(self, setting: str, rule: str) -> None:
        super().__init__(f"{setting}: {rule}")
        self.setting = setting
        self.rule = rule


_COMPARISONS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}
_SHOWN_INPUT_CHARS = 60


def key_path(loc: Sequence[str | int]) -> str:
    """("data", "dedup", "buckets") -> "data.dedup.buckets"; list positions as [i]."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _show(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    shown = repr(value)
    return shown if len(shown) <= _SHOWN_INPUT_CHARS else shown[: _SHOWN_INPUT_CHARS - 3] + "..."


def _settings_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The setting names of the config section at `loc` (empty when `loc` is not a section)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _unknown_setting(loc: Sequence[str | int], root: type[BaseModel] | None) -> str:
    known = _settings_at(root, loc[:-1]) if root is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return "unknown setting" + (f" (did you mean {key_path([*loc[:-1], close[0]])}?)" if close else "")


def describe_problem(error: dict[str, Any], root: type[BaseModel] | None = None) -> tuple[str, str]:
    """(key path, rule) of one pydantic error."""
    loc, kind, ctx = list(error["loc"]), error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return key_path(loc), _unknown_setting(loc, root)
    if kind == "missing":
        return key_path(loc), "required setting is missing"
    if kind == "value_error" and isinstance(ctx.get("error"), SettingRule):
        rule: SettingRule = ctx["error"]
        return key_path([*loc, rule.setting]), rule.rule
    if kind in _COMPARISONS:
        symbol, bound = _COMPARISONS[kind]
        return key_path(loc), f"must be {symbol} {_show(ctx[bound])} (got {_show(error['input'])})"
    if kind == "value_error":
        return key_path(loc), str(ctx.get("error", error["msg"]))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return key_path(loc), f"must be a mapping of settings (got {_show(error['input'])})"
    message = error["msg"].replace("Input should be", "must be", 1)
    return key_path(loc), f"{message} (got {_show(error['input'])})"


def describe_validation_error(err: ValidationError, root: type[BaseModel] | None = None) -> str:
    """One line for the first problem; the key paths of any others are listed after it."""
    problems = [describe_problem(e, root) for e in err.errors()]
    path, rule = problems[0]
    line = f"{path}: {rule}" if path else rule
    if len(problems) > 1:
        others = ", ".join(p or "(top level)" for p, _ in problems[1:])
        line += f"; {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}: {others}"
    return line


def describe_yaml_error(err: yaml.YAMLError) -> str:
    """'line 3, column 7: mapping values are not allowed here' (1-based, as editors count)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{problem} ({context})" if context else problem
    return f"{where}invalid YAML: {' '.join(detail.split())}"
