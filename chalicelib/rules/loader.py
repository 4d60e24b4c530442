"""Load rule sets from YAML or JSON with errors that name the path (and the YAML line)."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chalicelib.errors import ValidationFailed
from chalicelib.rules.model import RuleSet, Vocabulary, _problem, undeclared_reads

DEFAULT_RULESET_PATH = Path(__file__).with_name("default.yaml")
log = logging.getLogger(__name__)

Lines = dict[tuple[str | int, ...], int]


_STANDARD_TAGS = "tag:yaml.org,2002:"
_PYTHON_TAGS = "tag:yaml.org,2002:python/"
MAX_NODES = 100_000  # aliases can multiply a small text into a huge document ("billion laughs")


def _to_python(node: Any, path: tuple[str | int, ...], lines: Lines, seen: list[int] | None = None) -> Any:
    """Build plain data from a composed YAML node, remembering each path's 1-based line."""
    import yaml

    budget = seen if seen is not None else [0]
    budget[0] += 1
    if budget[0] > MAX_NODES or len(path) > 100:
        raise ValidationFailed(f"too large or recursive (line {node.start_mark.line + 1})", field="$")
    lines[path] = node.start_mark.line + 1
    if not node.tag.startswith(_STANDARD_TAGS) or node.tag.startswith(_PYTHON_TAGS):
        # Rule sets, mappings and vocabularies are plain data: application tags (!foo) and Python's
        # (!!python/...) mean nothing here.
        raise ValidationFailed(f"YAML tag {node.tag!r} is not allowed: plain data only (line {node.start_mark.line + 1})",
                               field=format_path(path))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path)
            if isinstance(key, (list, dict, set)):
                raise ValidationFailed(f"mapping keys must be text (line {key_node.start_mark.line + 1})", field="$")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, (*path, key), lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(child, (*path, i), lines, budget) for i, child in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: Any, path: tuple[str | int, ...]) -> Any:
    # Constructed directly: re-serialising a node and loading it again fails on empty values ("key:").
    import yaml

    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except Exception:  # !!int on text, a bad !!binary; PyYAML's !!timestamp even raises AttributeError
        raise ValidationFailed(f"{node.value!r:.40} is not a valid {node.tag.rpartition(':')[2]} "
                               f"(line {node.start_mark.line + 1})", field=format_path(path)) from None


def _read_yaml(text: str) -> tuple[Any, Lines]:
    import yaml  # only rule-set authoring needs it, not the API Lambda's cold start

    lines: Lines = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValidationFailed(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", field="$") from None
    if node is None:
        return None, lines
    return _to_python(node, (), lines), lines


def format_path(loc: tuple[Any, ...]) -> str:
    """``('engagement', 3, 'caps', 'window_days')`` -> ``engagement[3].caps.window_days``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("<"):
            continue  # a union tag, not a key the author wrote
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def _line_for(loc: tuple[Any, ...], lines: Lines) -> int | None:
    clean = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("<")))
    for end in range(len(clean), -1, -1):
        if clean[:end] in lines:
            return lines[clean[:end]]
    return None


def _errors(exc: ValidationError, lines: Lines) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        item: dict[str, Any] = {"path": format_path(loc), "message": msg}
        line = _line_for(loc, lines)
        if line is not None and lines:
            item["line"] = line
        out.append(item)
    return out


def failed(errors: list[dict[str, Any]]) -> ValidationFailed:
    """One ``ValidationFailed`` for a list of ``{"path", "message", "line"?}`` errors: the first in
    the message, all of them in ``details["errors"]``."""
    first = errors[0]
    where = f" (line {first['line']})" if "line" in first else ""
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return ValidationFailed(
        f"{first['path']}: {first['message']}{where}{more}", field=first["path"], details={"errors": errors}
    )


def validation_errors(exc: ValidationError, lines: Lines) -> list[dict[str, Any]]:
    """pydantic's errors as ``{"path", "message", "line"?}``, each with the YAML line it points at."""
    return _errors(exc, lines)


def parse_ruleset(data: Any, lines: Lines | None = None, *, stored: bool = False) -> RuleSet:
    """A rule set validated as a new version: its conditions read only attributes it declares, with
    values of their types (``undeclared_reads``). A ``stored`` version, made before declarations
    existed, loads whatever it reads, with a warning logged per problem."""
    if not isinstance(data, dict):
        raise ValidationFailed("a rule set must be a mapping (YAML/JSON object)", field="$")
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise failed(_errors(exc, lines or {})) from None
    problems = declaration_errors(ruleset, lines or {})
    if problems and not stored:
        raise failed(problems)
    for problem in problems:
        log.warning("stored rule set %r: %s: %s", ruleset.name, problem["path"], problem["message"])
    return ruleset


def declaration_errors(ruleset: RuleSet, lines: Lines | None = None) -> list[dict[str, Any]]:
    """``undeclared_reads`` as ``{"path", "message", "line"?}`` errors."""
    problems = undeclared_reads(ruleset)
    if not problems:
        return []
    details = [_problem(loc, value, "undeclared", message) for loc, value, message in problems]
    return _errors(ValidationError.from_exception_data("RuleSet", details), lines or {})


def read_document(text: str, what: str = "rule set") -> tuple[Any, Lines]:
    """YAML or JSON text as plain data, with the line of every path (none for JSON).

    JSON is YAML, but JSON gets the faster parser and exact errors. Shared by every YAML document
    Baton validates (rule sets, import mappings), so their errors read alike.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text), {}
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"not valid JSON (line {exc.lineno}): {exc.msg}", field="$") from None
        except (ValueError, RecursionError):  # a number too long to convert, or nesting too deep
            raise ValidationFailed("not valid JSON: a number is too long or the nesting too deep", field="$") from None
    try:
        return _read_yaml(text)
    except (ValueError, RecursionError):
        raise ValidationFailed(f"{what} too large or recursive", field="$") from None


def parse_ruleset_text(text: str) -> RuleSet:
    """YAML or JSON text."""
    data, lines = read_document(text)
    return parse_ruleset(data, lines)


def parse_vocabulary_text(text: str) -> Vocabulary:
    """A history's ``vocabulary.yaml``: a rule set's ``event_types`` and ``attributes`` alone."""
    data, lines = read_document(text, "vocabulary")
    if data is None:
        return Vocabulary()
    if not isinstance(data, dict):
        raise ValidationFailed("a vocabulary must be a mapping with event_types and attributes", field="$")
    try:
        return Vocabulary.model_validate(data)
    except ValidationError as exc:
        raise failed(_errors(exc, lines)) from None


def load_ruleset(path: str | Path) -> RuleSet:
    return parse_ruleset_text(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_ruleset() -> RuleSet:
    return load_ruleset(DEFAULT_RULESET_PATH)


def json_schema() -> dict[str, Any]:
    """JSON Schema for editor completion (e.g. yaml-language-server's ``$schema`` comment)."""
    schema = RuleSet.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Baton rule set"
    return schema
