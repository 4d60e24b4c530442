"""Import a CRM or marketing export into the history layout the backtest reads.

    baton import Leads.csv --mapping mapping.yaml --out history/

A mapping file (YAML, validated like a rule set: errors name the key and the line) says which
column is the lead's key, its email, its creation time, its attributes, which summary columns
become events and which column is the outcome. The export is one row per lead, as CRM exports are;
the result is ``leads.parquet`` (one row per lead: id, key, email, creation time, typed attributes),
``events.parquet`` and ``outcomes.parquet`` in the layouts of docs/backtest-data.md, which
``read_history``, the notebooks and ``baton backtest`` read.

Rules for what an export leaves open (docs/importing.md has the full format):

- a lead without an email is keyed by ``lead_id_for_key(source, key)``: no address is invented,
  and the key stays with the lead (``lead_key``) so a later address can be linked to it;
- events made from a count or an amount column are spread evenly from ``created_at`` over
  ``spread_days`` (written as one row with ``repeat`` N, which readers expand); events made from a
  column's values (a "last activity") happen at the end of that window; outcomes take their time
  from a column (``outcome.at``) or ``outcome.offset_days`` after ``created_at``;
- a row that cannot be read (text in a number column, an unknown outcome value) is skipped and
  counted, with the first examples kept; ``strict=True`` refuses the file at the first one.

The work is done column by column (pyarrow, and pandas where Arrow has no equivalent; imported on
call), never row by row in Python except one hash per lead id (on a thread of its own); a column
that repeats its values is dictionary-encoded once and read once per distinct value; Parquet is
encoded on two writer threads while the next piece is built. ``bench/import.py`` measures it
against ``pandas.read_csv``.
"""

from __future__ import annotations

import binascii
import csv
import difflib
import io
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from baton.backtest.io import write_vocabulary
from chalicelib.attributes import (
    BY_NAME,
    LEAD_FIELDS,
    boolean,
    enum_value,
    non_negative_number,
    number,
    whole_number,
)
from chalicelib.engine import OUTCOMES
from chalicelib.errors import ValidationFailed
from chalicelib.events import KNOWN_TYPES
from chalicelib.rules.loader import Lines, failed, read_document, validation_errors
from chalicelib.rules.model import AttributeDeclaration, RuleSet, Vocabulary, closest, unknown_event_type
from chalicelib.state import LEAD_ID_DIGEST_BYTES, LEAD_ID_PREFIX, lead_id_digests

if TYPE_CHECKING:
    import numpy as np

DAY = 86400.0
EXAMPLES = 5  # examples kept per skip reason
# Columns of leads.parquet that are not attributes (read_leads keeps them out of the traits).
LEAD_COLUMNS = ("lead_id", "lead_key", "email", "created_at")
_RESERVED = frozenset({*LEAD_COLUMNS, "occurred_at", "ts", "timestamp", "anonymous_id", "email_domain"})
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_Strict = ConfigDict(extra="forbid", frozen=True)


class ImportRefused(Exception):
    """The file cannot be imported as a whole (unreadable, malformed, or a bad row under ``strict``).

    The message names the row and the column where it can.
    """


# -- the mapping file ----------------------------------------------------------------------------------


class TimeColumn(BaseModel):
    """A column of times: ISO 8601 by default, or ``format`` (a strptime pattern, ``epoch_s``, ``epoch_ms``)."""

    model_config = _Strict
    column: str = Field(min_length=1)
    format: str = "ISO8601"


def _time_column(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


class KeyColumn(BaseModel):
    model_config = _Strict
    column: str = Field(min_length=1)


class RowNumber(BaseModel):
    model_config = _Strict
    row_number: Literal[True]


def _key_kind(value: Any) -> str:
    return "<row_number>" if isinstance(value, dict) and "row_number" in value else "<column>"


class CreatedBetween(BaseModel):
    """No dates in the export: spread the leads evenly over ``between``, in ``order_by`` order (else file order)."""

    model_config = _Strict
    between: tuple[date, date]
    order_by: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> CreatedBetween:
        if self.between[1] < self.between[0]:
            raise ValueError("between: the second date is before the first")
        return self


def _created_kind(value: Any) -> str:
    return "<between>" if isinstance(value, dict) and "between" in value else "<column>"


AttributeType = Literal["text", "number", "integer", "boolean", "date"]


class AttributeSpec(BaseModel):
    """A column for an attribute. Baton's own attributes take their type from the vocabulary
    (chalicelib/attributes.py: ``company_size`` a whole number, ``annual_revenue`` a number);
    custom ones are text unless ``type`` says otherwise."""

    model_config = _Strict
    column: str = Field(min_length=1)
    type: AttributeType | None = None
    format: str = "ISO8601"  # for type: date


def attribute_type(name: str, spec: AttributeSpec, declared: AttributeDeclaration | None = None) -> str:
    """The type an attribute is read as: ``text``, ``number``, ``integer``, ``boolean``, ``date``,
    ``signed`` (a custom number the rule set declares: any number, as ``attributes.number`` reads
    it) or ``enum`` (one of the declared values)."""
    if declared is not None:  # the rule set's type wins; the mapping may only repeat it
        kind = {"number": "signed"}.get(declared.type, declared.type)
        if spec.type is not None and spec.type != declared.type and not (
                spec.type == "integer" and declared.type == "number"):
            raise ValueError(f"the rule set declares {name} as {declared.type}: leave type: out")
        return kind
    known = BY_NAME.get(name)
    if known is None:
        return spec.type or "text"
    kind = "text" if known.type == "email" else known.type
    given = {"number": ("number", "integer"), "text": ("text",)}.get(spec.type or "", (kind,))
    if kind not in given:
        raise ValueError(f"{name} is {'a whole number' if kind == 'integer' else 'a ' + kind} in Baton's attribute "
                         f"vocabulary: leave type: out")
    return kind


Scalar = str | int | float | bool


def _check_event_type(value: str) -> str:
    if not _EVENT_TYPE.match(value):
        raise ValueError(f"event type {value!r}: lower case letters, digits and _ (e.g. chat_message)")
    return value


class CountEvents(BaseModel):
    """``count`` (times ``times``, when given) events of ``type`` per row."""

    model_config = _Strict
    type: str
    count: str = Field(min_length=1)
    times: str | None = None
    max_count: int = Field(default=100, ge=1, le=10_000)
    properties: dict[str, Scalar] = Field(default_factory=dict)

    _type = field_validator("type")(_check_event_type)


class AmountEvents(BaseModel):
    """Events of ``type`` carrying an amount (``{property: amount}``): one per row, or the amount split
    evenly over ``per`` events (e.g. time on site over the visits)."""

    model_config = _Strict
    type: str
    amount: str = Field(min_length=1)
    property: str = Field(default="amount", pattern=_NAME.pattern)
    per: str | None = None
    max_count: int = Field(default=100, ge=1, le=10_000)
    properties: dict[str, Scalar] = Field(default_factory=dict)

    _type = field_validator("type")(_check_event_type)


class ValueEvents(BaseModel):
    """One event per row whose ``column`` holds a mapped value: value -> event type (null: no event).

    Values not in the map make no event and are counted in the summary. The original value is kept
    as the event property ``property`` when given.
    """

    model_config = _Strict
    column: str = Field(min_length=1)
    values: dict[str, str | None]
    property: str | None = Field(default=None, pattern=_NAME.pattern)
    at: Literal["start", "end"] = "end"

    @field_validator("values")
    @classmethod
    def _types(cls, values: dict[str, str | None]) -> dict[str, str | None]:
        for kind in values.values():
            if kind is not None:
                _check_event_type(kind)
        return values


def _event_kind(value: Any) -> str:
    """The union's tag (in angle brackets: error paths leave tags out)."""
    if isinstance(value, dict):
        for kind in ("count", "amount", "values"):
            if kind in value:
                return f"<{kind}>"
    return "<values>"


EventSpec = Annotated[
    Annotated[CountEvents, Tag("<count>")] | Annotated[AmountEvents, Tag("<amount>")] | Annotated[ValueEvents, Tag("<values>")],
    Discriminator(_event_kind),
]


class OutcomeSpec(BaseModel):
    """The outcome column: value -> outcome (null: none yet), dated by ``at`` or ``offset_days``."""

    model_config = _Strict
    column: str = Field(min_length=1)
    values: dict[str, str | None]
    at: TimeColumn | None = None
    offset_days: float | None = Field(default=None, gt=0, le=3650)
    reason: str | None = None  # a column holding why (e.g. a lost reason)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        return _time_column(value)

    @field_validator("values")
    @classmethod
    def _known(cls, values: dict[str, str | None]) -> dict[str, str | None]:
        for value, outcome in values.items():
            if outcome is not None and outcome not in OUTCOMES:
                raise ValueError(f"{value!r} -> {outcome!r}: an outcome is one of {', '.join(OUTCOMES)} (or null)")
        return values

    @model_validator(mode="after")
    def _dated(self) -> OutcomeSpec:
        if self.at is None and self.offset_days is None:
            raise ValueError("say when outcomes happened: at (a column of times) or offset_days (after created_at)")
        return self


class Mapping(BaseModel):
    """What one export's columns mean to Baton."""

    model_config = _Strict
    lead_key: Annotated[
        Annotated[KeyColumn, Tag("<column>")] | Annotated[RowNumber, Tag("<row_number>")], Discriminator(_key_kind)
    ]
    email: str | None = None
    created_at: Annotated[
        Annotated[TimeColumn, Tag("<column>")] | Annotated[CreatedBetween, Tag("<between>")], Discriminator(_created_kind)
    ]
    null_values: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    events: list[EventSpec] = Field(default_factory=list)
    outcome: OutcomeSpec | None = None
    spread_days: float = Field(default=14.0, gt=0, le=365)
    source: str = Field(default="import", min_length=1, max_length=64)
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("lead_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("created_at", mode="before")
    @classmethod
    def _created(cls, value: Any) -> Any:
        return _time_column(value)

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"column": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("null_values")
    @classmethod
    def _nulls(cls, value: list[str]) -> list[str]:
        return sorted({str(v).strip() for v in value} | {""})

    @property
    def tokens(self) -> frozenset[str]:
        return frozenset(self.null_values) | {""}


def attribute_column(name: str) -> str:
    """A Baton attribute name (``country``, ``custom.occupation``) -> its column in leads.parquet."""
    if name in LEAD_FIELDS and name not in ("email", "email_domain"):
        return name
    head, _, rest = name.partition(".")
    if head == "custom" and _NAME.match(rest) and rest not in _RESERVED and rest not in LEAD_FIELDS:
        return rest
    known = sorted(LEAD_FIELDS - {"email", "email_domain"})
    close = difflib.get_close_matches(name, [*known, f"custom.{name}"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown attribute {name!r}{hint}: use a lead field ({', '.join(known)}) or custom.<name> "
        "(letters, digits, _)"
    )


def parse_mapping_text(text: str) -> tuple[Mapping, Lines]:
    """A mapping file's text -> the validated ``Mapping`` and each key's line (for later errors)."""
    data, lines = read_document(text, "mapping")
    if not isinstance(data, dict):
        raise ValidationFailed("a mapping must be a YAML mapping (key: value lines)", field="$")
    errors = []
    attributes = data.get("attributes")
    for name, spec in attributes.items() if isinstance(attributes, dict) else ():
        try:
            attribute_column(str(name))
            if isinstance(spec, dict) and spec.get("type") in ("text", "number", "integer", "boolean", "date"):
                attribute_type(str(name), AttributeSpec.model_validate({"column": "-", "type": spec["type"]}))
        except ValueError as exc:
            error: dict[str, Any] = {"path": f"attributes.{name}", "message": str(exc)}
            if ("attributes", name) in lines:
                error["line"] = lines[("attributes", name)]
            errors.append(error)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        errors += validation_errors(exc, lines)
    if errors:
        raise failed(errors)
    return mapping, lines


def load_mapping(path: str | Path) -> tuple[Mapping, Lines]:
    return parse_mapping_text(Path(path).read_text(encoding="utf-8"))


def check_vocabulary(mapping: Mapping, ruleset: RuleSet, lines: Lines | None = None) -> None:
    """The event types the mapping makes must be Baton's own or declared by the rule set, and its
    custom attributes' types agree with the rule set's declarations: a ``ValidationFailed`` naming
    the mapping key (and line), with the closest known type."""
    known = KNOWN_TYPES | frozenset(ruleset.event_types)
    errors: list[dict[str, Any]] = []
    unknown = False

    def error(path: tuple[str | int, ...], message: str) -> None:
        found: dict[str, Any] = {"path": _path(path), "message": message}
        line = _line(path, lines or {})
        if line is not None:
            found["line"] = line
        errors.append(found)

    for path, kind in _made(mapping):
        if kind not in known and unknown:
            error(path, f"unknown event type {kind!r}{closest(kind, known)}: declare it too")
        elif kind not in known:  # the first says what to do; the next ones say only which
            unknown = True
            error(path, unknown_event_type(kind, known)
                  + f" in a rule set passed with --rules (checked against {ruleset.name!r})")
    for name, attribute in mapping.attributes.items():
        declared = ruleset.attributes.get(name)
        if declared is not None:
            try:
                attribute_type(name, attribute, declared)
            except ValueError as exc:
                error(("attributes", name, "type"), str(exc))
    if errors:
        raise failed(errors)


def _made(mapping: Mapping) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(mapping key, event type) of every event type the mapping makes."""
    for i, spec in enumerate(mapping.events):
        if isinstance(spec, ValueEvents):
            yield from ((("events", i, "values", value), kind) for value, kind in spec.values.items() if kind is not None)
        else:
            yield ("events", i, "type"), spec.type


def vocabulary_of(mapping: Mapping, ruleset: RuleSet) -> Vocabulary:
    """The rule set's declarations of the event types the mapping makes and the attributes it
    fills: written beside the history (vocabulary.yaml), so that a rule set suggested from it
    declares them as the analyst did (descriptions, enum values, units), not as guessed from data."""
    made = {kind for _, kind in _made(mapping)}
    return Vocabulary(event_types={k: v for k, v in ruleset.event_types.items() if k in made},
                      attributes={k: v for k, v in ruleset.attributes.items() if k in mapping.attributes})


# -- the summary --------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import read, wrote and left out (printed by ``baton import``, saved as import-summary.json)."""

    file: str
    rows: int = 0
    leads: int = 0
    with_email: int = 0
    events: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    no_outcome: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unmapped_columns: list[str] = field(default_factory=list)
    unmapped_values: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> value -> rows
    capped: dict[str, int] = field(default_factory=dict)  # event type -> rows whose count was capped
    notes: list[str] = field(default_factory=list)
    start: str | None = None  # first and last created_at
    end: str | None = None
    seconds: float = 0.0
    written: dict[str, str] = field(default_factory=dict)

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "rows": self.rows, "leads": self.leads, "with_email": self.with_email,
            "events": dict(self.events), "events_total": sum(self.events.values()), "outcomes": dict(self.outcomes),
            "no_outcome": self.no_outcome, "skipped_rows": self.skipped_rows, "skipped": dict(self.skipped),
            "examples": self.examples, "unmapped_columns": self.unmapped_columns,
            "unmapped_values": self.unmapped_values, "capped": self.capped, "notes": self.notes,
            "start": self.start, "end": self.end, "seconds": round(self.seconds, 3), "written": self.written,
        }

    def to_text(self) -> str:
        out = [f"{self.file}: {self.rows:,} rows read, {self.leads:,} leads ({self.with_email:,} with an email)"]
        if self.start:
            out.append(f"created: {self.start} .. {self.end}")
        total = sum(self.events.values())
        out.append(f"events: {total:,}" + "".join(f"\n  {kind}: {n:,}" for kind, n in
                                                sorted(self.events.items(), key=lambda kv: -kv[1])))
        out.append(f"outcomes: {sum(self.outcomes.values()):,}" + "".join(
            f"\n  {kind}: {n:,}" for kind, n in sorted(self.outcomes.items(), key=lambda kv: -kv[1]))
            + (f"\n  (none yet): {self.no_outcome:,}" if self.no_outcome else ""))
        if self.skipped:
            out.append(f"skipped rows: {self.skipped_rows:,}")
            for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
                out.append(f"  {reason}: {n:,}")
                for example in self.examples.get(reason, []):
                    value = f" = {example['value']!r}" if "value" in example else ""
                    out.append(f"    row {example['row']}, column {example['column']!r}{value}")
        else:
            out.append("skipped rows: 0")
        for column, values in self.unmapped_values.items():
            listed = ", ".join(f"{v!r} ({n:,})" for v, n in sorted(values.items(), key=lambda kv: -kv[1])[:8])
            out.append(f"values of {column!r} that make no event: {listed}")
        for kind, n in self.capped.items():
            out.append(f"{kind}: {n:,} rows capped at max_count")
        out.extend(f"note: {note}" for note in self.notes)
        if self.unmapped_columns:
            out.append(f"columns left unmapped ({len(self.unmapped_columns)}): {', '.join(self.unmapped_columns)}")
        if self.written:
            out.append("wrote " + ", ".join(self.written.values()) + f" in {self.seconds:.2f} s")
        return "\n".join(out)


# -- reading the file ---------------------------------------------------------------------------------
#
# Columns are Arrow arrays from here on: read by pyarrow's CSV reader (multi-threaded, quoted
# newlines allowed), cleaned and mapped with pyarrow.compute; pandas only where Arrow has no
# equivalent (odd numbers, dates in a strptime format), on the few cells that need it.


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"  # .csv, .tsv, .txt, .gz: delimited text


def _open_text(path: Path, encoding: str) -> Any:
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")  # the caller closes it


@dataclass
class _Layout:
    header: list[str]  # the column names as written (empty names included)
    names: list[str]  # the names given to the reader: empty ones and a trailing extra field named
    delimiter: str | None = None


def _layout(path: Path, mapping: Mapping) -> _Layout:
    """The header row, the delimiter (sniffed unless the mapping sets it) and whether data rows end
    with one more, empty field than the header (a trailing delimiter the header lacks)."""
    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        names = list(pq.read_schema(path).names)
        return _Layout(names, names)
    try:
        with _open_text(path, mapping.encoding) as handle:
            sample = handle.read(65536)
    except UnicodeDecodeError:
        raise ImportRefused(f"{path}: not {mapping.encoding} text; set encoding: in the mapping") from None
    if not sample.strip():
        raise ImportRefused(f"{path}: the file is empty")
    delimiter = mapping.delimiter
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    records = csv.reader(io.StringIO(sample), delimiter=delimiter)
    header = next(records)
    first = next(records, None)
    names = [name if name.strip() else f"(column {i + 1})" for i, name in enumerate(header)]
    if first is not None and len(first) == len(header) + 1 and first[-1] == "":
        names.append(f"(column {len(header) + 1})")
    return _Layout(header, names, delimiter)


def _read(path: Path, mapping: Mapping, layout: _Layout, columns: list[str]) -> Any:
    """The used columns as an Arrow table: text for CSV (every field is parsed, so a row with more
    fields than the header is refused, naming its row), typed as stored for Parquet."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns)
    encoding = "utf8" if mapping.encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig") \
        else mapping.encoding
    # Columns whose values repeat (sources, countries, counts, flags: most of an export) are read
    # as dictionaries, hashed by the reader's threads while they parse; ids and times as text.
    unique = _unique_columns(mapping)
    types = {name: pa.string() if name in unique else pa.dictionary(pa.int32(), pa.string()) for name in layout.names}

    def read(newlines_in_values: bool) -> Any:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=layout.names, skip_rows=1, encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter or ",", newlines_in_values=newlines_in_values),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                                 include_columns=columns),
        )

    try:
        try:  # blocks parsed in parallel; a quoted newline breaks a row, and the file is read again
            return read(newlines_in_values=False)
        except pa.ArrowInvalid:
            return read(newlines_in_values=True)  # serial: a block may end inside a quoted value
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message:
            raise ImportRefused(f"{path}: not {mapping.encoding} text; set encoding: in the mapping") from None
        raise ImportRefused(f"{path}: malformed: {_malformed(path, mapping, layout)}") from None


def _unique_columns(mapping: Mapping) -> set[str]:
    """The columns that hold a value per lead: its key, its email and its times."""
    named = [mapping.email, mapping.lead_key.column if isinstance(mapping.lead_key, KeyColumn) else None,
             mapping.created_at.column if isinstance(mapping.created_at, TimeColumn) else mapping.created_at.order_by,
             mapping.outcome.at.column if mapping.outcome and mapping.outcome.at else None]
    return {name for name in named if name}


def _malformed(path: Path, mapping: Mapping, layout: _Layout) -> str:
    """Which row has a wrong number of fields (found again with the csv module: only on this error
    path, and without quoting the row, which may hold personal data)."""
    expected = len(layout.names)
    with _open_text(path, mapping.encoding) as handle:
        for number, record in enumerate(csv.reader(handle, delimiter=layout.delimiter or ","), start=1):
            if number > 1 and len(record) != expected and record:
                return f"row {number} has {len(record)} fields, the header {len(layout.header)}"
    return "a row's fields do not match the header"


def _clean(column: Any, tokens: frozenset[str]) -> Any:
    """Text with blanks trimmed, null tokens and empty cells as nulls. A column that repeats its
    values (most of an export's: sources, countries, stages) comes back dictionary-encoded, each
    distinct value cleaned once, and is read once per distinct value after this (``_on_values``);
    a column of mostly unique values (keys, emails) as a string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):  # (as the CSV reader gives a column that repeats)
        if isinstance(column, pa.ChunkedArray):
            column = column.unify_dictionaries()
        encoded = _combined(column)
        return _recoded(encoded.indices, _clean_text(_text(encoded.dictionary), tokens))
    column = _text(column)
    sample = column.slice(0, 4096)
    if pc.count_distinct(sample).as_py() * 4 > len(sample):
        return _clean_text(_combined(column), tokens)
    encoded = _combined(pc.dictionary_encode(column))  # (one dictionary for all chunks: joins their indices)
    return _recoded(encoded.indices, _clean_text(encoded.dictionary, tokens))  # (" a" and "a": one value)


def _text(column: Any) -> Any:
    """A column of a Parquet export as text (a whole number stored as a float reads as "1", not "1.0")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_floating(column.type):
        values = pc.drop_null(column)
        if len(values) and pc.all(pc.equal(values, pc.round(values))).as_py():
            column = pc.cast(column, pa.int64())
    return pc.cast(column, pa.string())


def _recoded(indices: Any, values: Any) -> Any:
    """A dictionary array of ``values`` (which may repeat, or hold nulls) at ``indices``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    unique = pc.dictionary_encode(values)
    return pa.DictionaryArray.from_arrays(unique.indices.take(indices), unique.dictionary)


def _combined(column: Any) -> Any:
    """One array for a column: masks and takes after this are cheaper."""
    import pyarrow as pa

    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _clean_text(column: Any, tokens: frozenset[str]) -> Any:
    """``_clean`` on every value of a string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(column)
    nulls = pc.is_in(trimmed, value_set=pa.array(sorted(tokens), pa.string()))
    if not pc.any(nulls).as_py():  # (most columns: no copy of their text)
        return trimmed
    return pc.if_else(nulls, pa.scalar(None, pa.string()), trimmed)


def _on_values(values: Any, read: Any) -> Any:
    """``read`` (an Arrow array -> an Arrow array as long) on each distinct value once when the
    column is dictionary-encoded, else on every value; an Arrow array as long as ``values``."""
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        return read(values.dictionary).take(values.indices)
    return read(values)


def _plain(values: Any) -> Any:
    """A cleaned column as a string array (what leads.parquet stores)."""
    return _on_values(values, lambda distinct: distinct)


def _per_distinct(values: Any, convert: Any, kind: Any) -> Any:
    """Each value through ``convert`` (Python, value -> value of Arrow type ``kind``), called once
    per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def read(array: Any) -> Any:
        distinct = pc.unique(pc.drop_null(array))
        found = pa.array([convert(v) for v in distinct.to_pylist()], kind)
        return found.take(pc.index_in(array, value_set=distinct))

    return _on_values(values, read)


def _value_map(values: Any, targets: dict[str, str | None]) -> tuple[Any, np.ndarray]:
    """Map each value through ``targets`` (value -> name, or None for "nothing"): the mapped Arrow
    array (null where None or no value; dictionary-encoded when ``values`` is) and a mask of the
    values the map does not know."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = pa.array(list(targets), pa.string())
    names = pa.array(list(targets.values()), pa.string())
    if pa.types.is_dictionary(values.type):
        mapped = _recoded(values.indices, names.take(pc.index_in(values.dictionary, value_set=keys)))
    else:
        mapped = names.take(pc.index_in(values, value_set=keys))
    unknown = _on_values(values, lambda distinct: pc.and_(pc.invert(pc.is_in(distinct, value_set=keys)),
                                                          pc.is_valid(distinct)))
    return mapped, _mask(pc.fill_null(unknown, False))


def _mask(array: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _valid(values: Any) -> np.ndarray:
    import pyarrow.compute as pc

    return _mask(pc.is_valid(values))


# -- typed values -------------------------------------------------------------------------------------

def _numbers(values: Any, kind: str = "amount") -> np.ndarray:
    """Numbers (float64, NaN where missing or unreadable) from a column.

    ``kind`` is how a value is read, as everywhere in Baton (chalicelib/attributes.py): ``integer``
    a whole number >= 0 (a range such as 50-200 or 1000+ counts as its lower bound), ``number`` a
    number >= 0, ``signed`` any number (a declared custom number), ``amount`` any number (event columns; negatives are refused by the caller). Arrow
    casts the column when every cell is a plain number; pandas reads the others, and the cells it
    cannot go through the vocabulary's own functions one by one (once per distinct value).
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    def read(values: Any) -> Any:
        try:
            return pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = values.to_pandas()
            numbers = np.array(pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
            retry = np.flatnonzero(np.isnan(numbers) & text.notna().to_numpy())
            parse = {"integer": whole_number, "signed": number}.get(kind, non_negative_number)
            for i, cell in zip(retry, text.iloc[retry].tolist(), strict=True):
                found = parse(cell)
                numbers[i] = np.nan if found is None else float(found)
            return pa.array(numbers, pa.float64())

    numbers = np.array(_on_values(values, read).to_numpy(zero_copy_only=False), dtype="float64")
    with np.errstate(invalid="ignore"):
        if kind not in ("amount", "signed"):
            numbers[numbers < 0] = np.nan
        if kind == "integer":
            numbers[numbers != np.floor(numbers)] = np.nan
    return numbers


def _booleans(values: Any) -> Any:
    """Yes/no values as the vocabulary reads them (``attributes.boolean``), once per distinct value."""
    import pyarrow as pa

    return _per_distinct(values, boolean, pa.bool_())


def _enum(values: Any, options: tuple[str, ...]) -> Any:
    """Each value as the declared enum value it names (``attributes.enum_value``), null for none."""
    import pyarrow as pa

    return _per_distinct(values, lambda v: enum_value(v, options), pa.string())


def _times(values: Any, fmt: str) -> np.ndarray:
    """Epoch seconds (float64, NaN where missing or unreadable) from a column of times."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if fmt in ("epoch_s", "epoch_ms"):
        numbers = _numbers(values)
        return numbers / 1000.0 if fmt == "epoch_ms" else numbers
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        micros = pc.cast(pc.cast(values, pa.timestamp("us", tz="UTC")), pa.int64())
        return np.asarray(micros.to_numpy(zero_copy_only=False), dtype="float64") / 1e6

    def read(values: Any) -> Any:
        parsed = pd.to_datetime(values.to_pandas(), format=fmt, utc=True, errors="coerce")
        return pa.array(((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype="float64", na_value=np.nan), pa.float64())

    return np.array(_on_values(values, read).to_numpy(zero_copy_only=False), dtype="float64")


# -- the import ---------------------------------------------------------------------------------------


class _Rows:
    """Row bookkeeping: which rows are still in, and why the others were left out."""

    def __init__(self, n: int, summary: ImportSummary, strict: bool, first_row: int) -> None:
        import numpy as np

        self.keep = np.ones(n, dtype=bool)
        self.summary = summary
        self.strict = strict
        self.first_row = first_row  # the file row number of the first data row
        self.first_bad: tuple[int, str] | None = None

    def refuse_if_strict(self) -> None:
        if self.first_bad is not None:
            raise ImportRefused(self.first_bad[1])

    def drop(self, bad: np.ndarray, reason: str, column: str, values: Any = None) -> None:
        """Leave out the rows in ``bad`` for ``reason``; ``values`` (when given) are shown in examples."""
        import numpy as np

        bad = np.asarray(bad, dtype=bool) & self.keep
        if not bad.any():
            return
        where = np.flatnonzero(bad)
        if self.strict:  # refused once every check ran, at the earliest row
            row = int(where[0])
            value = f" ({_value_at(values, row)!r})" if values is not None else ""
            found = (row, f"row {row + self.first_row}, column {column!r}: {reason}{value}")
            self.first_bad = min(self.first_bad, found) if self.first_bad else found
        self.keep &= ~bad
        self.summary.skipped[reason] = self.summary.skipped.get(reason, 0) + len(where)
        examples = self.summary.examples.setdefault(reason, [])
        for row in where[: EXAMPLES - len(examples)]:
            example: dict[str, Any] = {"row": int(row) + self.first_row, "column": column}
            if values is not None:
                example["value"] = str(_value_at(values, int(row)))
            examples.append(example)


def _value_at(values: Any, row: int) -> Any:
    return values[row].as_py() if hasattr(values, "type") else values[row]


def _check_columns(mapping: Mapping, header: list[str], lines: Lines) -> list[str]:
    """Every column the mapping names must be in the file: errors name the mapping key and line."""
    wanted: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(mapping.lead_key, KeyColumn):
        wanted.append((("lead_key",), mapping.lead_key.column))
    if mapping.email:
        wanted.append((("email",), mapping.email))
    if isinstance(mapping.created_at, TimeColumn):
        wanted.append((("created_at", "column"), mapping.created_at.column))
    elif mapping.created_at.order_by:
        wanted.append((("created_at", "order_by"), mapping.created_at.order_by))
    for name, spec in mapping.attributes.items():
        wanted.append((("attributes", name, "column"), spec.column))
    for i, event in enumerate(mapping.events):
        if isinstance(event, CountEvents):
            wanted.append((("events", i, "count"), event.count))
            if event.times:
                wanted.append((("events", i, "times"), event.times))
        elif isinstance(event, AmountEvents):
            wanted.append((("events", i, "amount"), event.amount))
            if event.per:
                wanted.append((("events", i, "per"), event.per))
        else:
            wanted.append((("events", i, "column"), event.column))
    if mapping.outcome:
        wanted.append((("outcome", "column"), mapping.outcome.column))
        if mapping.outcome.at:
            wanted.append((("outcome", "at"), mapping.outcome.at.column))
        if mapping.outcome.reason:
            wanted.append((("outcome", "reason"), mapping.outcome.reason))
    present = set(header)
    errors = []
    for path, column in wanted:
        if column not in present:
            close = difflib.get_close_matches(column, header, n=1)
            hint = f" (closest: {close[0]!r})" if close else ""
            error: dict[str, Any] = {"path": _path(path), "message": f"no column {column!r} in the file{hint}"}
            line = _line(path, lines)
            if line is not None:
                error["line"] = line
            errors.append(error)
    if errors:
        raise failed(errors)
    return list(dict.fromkeys(column for _, column in wanted))


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _line(path: tuple[str | int, ...], lines: Lines) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def import_file(path: str | Path, mapping: Mapping, out_dir: str | Path, *, lines: Lines | None = None,
                strict: bool = False, ruleset: RuleSet | None = None) -> ImportSummary:
    """Import one export into ``out_dir`` (created if needed); returns what happened.

    ``ruleset`` (default: the shipped one) is the vocabulary: the event types it declares may be
    made, and its custom attributes are read as the types it declares. Raises ``ImportRefused`` for
    a file that cannot be imported and ``ValidationFailed`` when the mapping names a column the file
    does not have, or an event type or attribute type the rule set does not declare.
    """
    # Lead ids are hashed in Python on a thread that holds the GIL while the main thread makes
    # many short Arrow calls, each of which has to take it back: at the default 5 ms switch
    # interval the main thread spent half its time waiting (measured on a million rows).
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        with import_memory():
            return _import(path, mapping, out_dir, lines=lines, strict=strict, ruleset=ruleset)
    finally:
        sys.setswitchinterval(switch)


@contextmanager
def import_memory() -> Iterator[None]:
    """Memory for an import (and for the bench's floor, which measures the import's own reading and
    writing) taken in small pages, from the C library's allocator.

    An import allocates and frees a few hundred MB in short-lived columns. Arrow's default allocator
    (mimalloc) and numpy (for any array of 4 MB or more) ask the kernel for huge pages, and each
    first touch of one has the kernel clear 2 MB: measured on a million rows, the kernel spent more
    time preparing Arrow's pages (5-7 s) than the import spent computing (5 s), and numpy's took a
    tenth of the import's CPU once Arrow's were gone (a fresh process: 3.67 s -> 3.08 s, median of 5)."""
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    huge = _numpy_huge_pages(False)
    try:
        yield
    finally:
        _numpy_huge_pages(huge)
        pa.set_memory_pool(previous)


def _numpy_huge_pages(enabled: bool) -> bool:
    """Whether numpy advises huge pages for its large arrays, set; the previous setting returned.
    (numpy's own switch, also read from NUMPY_MADVISE_HUGEPAGE at start; private, hence the guard:
    without it an import is only slower.)"""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:
        return enabled
    return bool(_set_madvise_hugepage(enabled))


def _import(path: str | Path, mapping: Mapping, out_dir: str | Path, *, lines: Lines | None,
            strict: bool, ruleset: RuleSet | None) -> ImportSummary:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    started = time.perf_counter()
    source = Path(path)
    if not source.exists():
        raise ImportRefused(f"{source}: no such file")
    if ruleset is None:
        from chalicelib.rules.loader import default_ruleset

        ruleset = default_ruleset()
    check_vocabulary(mapping, ruleset, lines)
    summary = ImportSummary(file=str(source))
    layout = _layout(source, mapping)
    used = _check_columns(mapping, layout.header, lines or {})
    table = _read(source, mapping, layout, used)
    n = table.num_rows
    summary.rows = n
    summary.unmapped_columns = [c for c in layout.header if c not in set(used) and c.strip()]
    tokens = mapping.tokens
    # A key is a key: only an empty one is missing (null tokens are words a form or a CRM puts in
    # a field nobody filled, not ids; and checking a million unique keys against them costs).
    key_tokens = frozenset({""})
    key_column = mapping.lead_key.column if isinstance(mapping.lead_key, KeyColumn) else None
    cleaned: dict[str, Any] = {}

    def column(name: str) -> Any:
        if name not in cleaned:
            cleaned[name] = _clean(table.column(name), key_tokens if name == key_column else tokens)
        return cleaned[name]

    rows = _Rows(n, summary, strict, first_row=2 if _kind(source) == "csv" else 1)

    # The lead: key, email.
    if isinstance(mapping.lead_key, KeyColumn):
        keys = _plain(column(mapping.lead_key.column))
        rows.drop(~_valid(keys), "lead_key is empty", mapping.lead_key.column)
    else:
        keys = pc.cast(pa.array(np.arange(rows.first_row, n + rows.first_row)), pa.string())
    emails = pa.nulls(n, pa.string())
    if mapping.email:
        emails = _plain(_on_values(column(mapping.email), pc.utf8_lower))
        bad = _valid(emails) & ~_mask(pc.fill_null(pc.match_substring(emails, "@"), True))
        if bad.any():
            summary.notes.append(f"{int(bad.sum()):,} values of {mapping.email!r} are not addresses: those leads keep "
                                 "their key and no email")
            emails = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), emails)

    # Lead ids are hashed (Python, one per row) on a thread while the columns below are parsed
    # (numpy and Arrow, which let it run).
    from concurrent.futures import ThreadPoolExecutor

    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baton-import-ids")
    hashed = hashing.submit(_lead_digests, mapping.source, keys, emails)
    hashing.shutdown(wait=False)

    # When the lead was created.
    created = _created(mapping, column, n, rows)

    # Attributes, typed.
    attributes: dict[str, Any] = {}
    for name, spec in mapping.attributes.items():
        values = column(spec.column)
        declared = ruleset.attributes.get(name)
        kind = attribute_type(name, spec, declared)
        typed: Any
        if kind == "text":
            typed = values  # (dictionary-encoded when it repeats: written as it is)
        elif kind == "enum":
            assert declared is not None and declared.values
            typed = _enum(values, tuple(declared.values))
            rows.drop(~_valid(typed) & _valid(values), "not a declared value", spec.column, values)
        elif kind in ("number", "integer", "signed"):
            numbers = _numbers(values, kind)
            reason = "not a whole number" if kind == "integer" else "not a number"
            rows.drop(np.isnan(numbers) & _valid(values), reason, spec.column, values)
            typed = pa.array(numbers, pa.float64(), mask=np.isnan(numbers))
            if kind == "integer":
                typed = pc.cast(typed, pa.int64())
        elif kind == "boolean":
            typed = _booleans(values)
            rows.drop(~_valid(typed) & _valid(values), "not a yes/no value", spec.column, values)
        else:
            seconds = _times(values, spec.format)
            rows.drop(np.isnan(seconds) & _valid(values), "not a date", spec.column, values)
            days = pa.array(np.where(np.isnan(seconds), 0, seconds // DAY).astype("int32"), pa.date32(),
                            mask=np.isnan(seconds))
            typed = pc.strftime(days, format="%Y-%m-%d")
        attributes[attribute_column(name)] = typed

    # Summary columns that become events: read now (a bad number leaves the row out), built later.
    event_inputs = [_event_input(i, spec, column, rows, summary) for i, spec in enumerate(mapping.events)]

    # The outcome.
    outcome_kinds = outcome_at = reasons = None
    if mapping.outcome:
        rule = mapping.outcome
        values = column(rule.column)
        outcome_kinds, unknown = _value_map(values, rule.values)
        rows.drop(unknown, "unknown outcome value", rule.column, values)
        outcome_at = _times(column(rule.at.column), rule.at.format) if rule.at is not None else np.full(n, np.nan)
        if rule.offset_days is not None:
            outcome_at = np.where(np.isnan(outcome_at), created + rule.offset_days * DAY, outcome_at)
        # A date without a time (Salesforce's ConvertedDate) on the day the lead was created is
        # midnight, before it: it happened that day, after the lead existed.
        same_day = (outcome_at < created) & (created - outcome_at < DAY)
        outcome_at = np.where(same_day, created, outcome_at)
        has = _valid(outcome_kinds)
        at_values = column(rule.at.column) if rule.at else None
        at_column = rule.at.column if rule.at else rule.column
        rows.drop(has & np.isnan(outcome_at), "outcome without a time", at_column, at_values)
        rows.drop(has & (outcome_at < created), "outcome before created_at", at_column, at_values)
        reasons = column(rule.reason) if rule.reason else None
        if rule.offset_days is not None and rule.offset_days <= mapping.spread_days:
            summary.notes.append(f"outcome.offset_days ({rule.offset_days:g}) is not after the spread window "
                                 f"(spread_days {mapping.spread_days:g}): some events come after the outcome")

    # One row per lead: the first row of a key (or an email) wins.
    digests, has_id = hashed.result()
    rows.drop(_duplicates(digests, rows.keep & has_id), "duplicate lead (same key or email as an earlier row)",
              mapping.lead_key.column if isinstance(mapping.lead_key, KeyColumn) else "(row number)")

    rows.refuse_if_strict()
    keep = rows.keep
    index = pa.array(np.flatnonzero(keep), pa.int64())
    every_row = bool(keep.all())

    def kept(values: Any) -> Any:  # (no copy when no row was left out)
        return values if every_row else values.take(index)

    summary.leads = len(index)
    emails_kept = kept(emails)
    summary.with_email = summary.leads - emails_kept.null_count
    kept_created = created[keep]
    if summary.leads:
        summary.start, summary.end = _iso(float(kept_created.min())), _iso(float(kept_created.max()))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept_ids = _lead_ids(digests[keep])  # (every kept row has one: a row without a key is left out)
    # Two writers: leads and outcomes on one, events (the most rows) on the other.
    with _Background() as background, _Background() as events_writer:
        background.submit(_write_leads, out / "leads.parquet", _strings(kept_ids), kept(keys),
                          emails_kept, kept_created, {name: kept(values) for name, values in attributes.items()})
        if outcome_kinds is not None and outcome_at is not None:
            kinds = kept(outcome_kinds)
            has_outcome = pc.is_valid(kinds)
            summary.outcomes = {k: int(n) for k, n in zip(*_counts(pc.drop_null(kinds)), strict=True)}
            summary.no_outcome = kinds.null_count
            at_kept = pa.array(outcome_at[keep])
            background.submit(_write_outcomes, out / "outcomes.parquet", _strings(kept_ids[_mask(has_outcome)]),
                              pc.drop_null(kinds), pc.filter(at_kept, has_outcome).to_numpy(zero_copy_only=False),
                              pc.filter(kept(reasons), has_outcome) if reasons is not None else None)
        else:
            summary.no_outcome = summary.leads
        _write_events(out / "events.parquet", mapping, event_inputs, np.flatnonzero(keep), kept_ids, emails_kept,
                      kept_created, summary, events_writer)
    summary.written = {"leads": str(out / "leads.parquet"), "events": str(out / "events.parquet")}
    if outcome_kinds is not None:
        summary.written["outcomes"] = str(out / "outcomes.parquet")
    summary.written["vocabulary"] = str(write_vocabulary(out, vocabulary_of(mapping, ruleset), f"rule set {ruleset.name!r}"))
    summary.seconds = time.perf_counter() - started
    (out / "import-summary.json").write_text(json.dumps(summary.to_dict(), indent=1, default=str) + "\n")
    summary.written["summary"] = str(out / "import-summary.json")
    return summary


def _lead_digests(source: str, keys: Any, emails: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's lead id as the bytes of its digest (``chalicelib.state.lead_id_digests``): from its
    email when it has one, else from its key; and whether it has one (neither: no id)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    by_email = _valid(emails)
    by_key = _valid(keys) & ~by_email
    digests = np.zeros((len(keys), LEAD_ID_DIGEST_BYTES), dtype=np.uint8)
    for rows, source_of, values in ((by_key, source, keys), (by_email, None, emails)):
        if rows.any():
            chosen = pc.filter(values, pa.array(rows)).cast(pa.binary()).to_pylist()
            found = np.frombuffer(b"".join(lead_id_digests(source_of, chosen)), dtype=np.uint8)
            digests[rows] = found.reshape(len(chosen), -1)[:, :LEAD_ID_DIGEST_BYTES]
    return digests, by_key | by_email


def _lead_ids(digests: np.ndarray) -> np.ndarray:
    """Lead ids (``chalicelib.state.lead_id_from_digest``) from digests, as fixed-width bytes: rows
    of them are taken and made into Arrow strings (``_strings``) without a Python object each."""
    import numpy as np

    prefix = np.frombuffer(LEAD_ID_PREFIX.encode(), dtype=np.uint8)
    text = np.empty((len(digests), len(prefix) + 2 * LEAD_ID_DIGEST_BYTES), dtype=np.uint8)
    text[:, :len(prefix)] = prefix
    text[:, len(prefix):] = np.frombuffer(binascii.hexlify(np.ascontiguousarray(digests).tobytes()),
                                          dtype=np.uint8).reshape(len(digests), -1)
    return text.view(f"S{text.shape[1]}").reshape(len(digests))


def _strings(fixed: np.ndarray) -> Any:
    """An Arrow string array sharing the buffer of a numpy array of fixed-width ASCII bytes."""
    import numpy as np
    import pyarrow as pa

    fixed = np.ascontiguousarray(fixed)
    offsets = np.arange(0, fixed.itemsize * (len(fixed) + 1), fixed.itemsize, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(fixed), [None, pa.py_buffer(offsets),
                                                                  pa.py_buffer(fixed)]).cast(pa.string())


def _duplicates(digests: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The rows (of ``rows``) whose lead id an earlier one has: compared as two integers, the first
    eight bytes alone first (all different, the usual case: no id repeats)."""
    import numpy as np
    import pandas as pd

    where = np.flatnonzero(rows)
    chosen = digests[where]
    head = np.ascontiguousarray(chosen[:, :8]).view(np.uint64).ravel()
    found = pd.Series(head).duplicated(keep="first").to_numpy()
    if found.any():
        tail = np.ascontiguousarray(chosen[:, 8:12]).view(np.uint32).ravel()
        found = pd.DataFrame({"head": head, "tail": tail}).duplicated(keep="first").to_numpy()
    duplicate = np.zeros(len(rows), dtype=bool)
    duplicate[where[found]] = True
    return duplicate


def _counts(values: Any) -> tuple[list[str], list[int]]:
    import pyarrow.compute as pc

    counted = pc.value_counts(values)
    return counted.field("values").to_pylist(), counted.field("counts").to_pylist()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _created(mapping: Mapping, column: Any, n: int, rows: _Rows) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    spec = mapping.created_at
    if isinstance(spec, TimeColumn):
        values = column(spec.column)
        seconds = _times(values, spec.format)
        present = _valid(values)
        rows.drop(~present, "created_at is empty", spec.column)
        rows.drop(np.isnan(seconds) & present, "created_at is not a time", spec.column, values)
        return seconds
    start = datetime.combine(spec.between[0], datetime.min.time(), tzinfo=timezone.utc).timestamp()
    end = datetime.combine(spec.between[1] + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc).timestamp()
    if spec.order_by:
        order = column(spec.order_by)
        present = _valid(order)
        rows.drop(~present, "order_by value is empty", spec.order_by)
        numbers = _numbers(order)
        key = pa.array(numbers) if (~np.isnan(numbers)).sum() == present.sum() else _plain(order)
        ranks = np.empty(n, dtype="float64")  # (a stable sort: equal values keep file order)
        ranks[np.asarray(pc.array_sort_indices(key))] = np.arange(n)
    else:
        ranks = np.arange(n, dtype="float64")
    return start + (end - start) * ranks / max(n, 1)


@dataclass
class _EventInput:
    spec: CountEvents | AmountEvents | ValueEvents
    number: int  # position in the mapping's events list
    counts: np.ndarray | None = None  # events per row (count and amount rules)
    amounts: np.ndarray | None = None  # amount per event (amount rules)
    kinds: Any = None  # event type per row, null for none (value rules)
    properties: Any = None  # the event properties per row, as JSON (value rules)


def _event_input(number: int, spec: CountEvents | AmountEvents | ValueEvents, column: Any, rows: _Rows,
                 summary: ImportSummary) -> _EventInput:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(spec, ValueEvents):
        values = column(spec.column)
        kinds, unknown = _value_map(values, spec.values)
        if unknown.any():
            names, counts = _counts(_plain(pc.filter(values, pa.array(unknown))))
            summary.unmapped_values[spec.column] = dict(zip(names, counts, strict=True))
        properties = None
        if spec.property:  # the original value, as JSON
            name = spec.property
            properties = _per_distinct(values, lambda v: _json_value({name: v}), pa.string())
        return _EventInput(spec, number, kinds=kinds, properties=properties)

    def read(name: str) -> np.ndarray:
        values = column(name)
        numbers = _numbers(values)
        rows.drop(np.isnan(numbers) & _valid(values), "text in a number column", name, values)
        rows.drop(numbers < 0, "negative number in an event column", name, values)
        return numbers

    if isinstance(spec, CountEvents):
        raw = read(spec.count)
        if spec.times:
            raw = raw * read(spec.times)
        counts = np.rint(np.nan_to_num(raw, nan=0.0, posinf=0.0))
        capped = counts > spec.max_count
        if capped.any():
            summary.capped[spec.type] = summary.capped.get(spec.type, 0) + int(capped.sum())
        return _EventInput(spec, number, counts=np.minimum(counts, spec.max_count).astype("int64"))
    amounts = np.nan_to_num(read(spec.amount), nan=0.0)
    if spec.per:
        parts = np.rint(np.nan_to_num(read(spec.per), nan=0.0))
        parts = np.where(amounts > 0, np.maximum(parts, 1), 0)
    else:
        parts = (amounts > 0).astype("float64")
    capped = parts > spec.max_count
    if capped.any():
        summary.capped[spec.type] = summary.capped.get(spec.type, 0) + int(capped.sum())
    parts = np.minimum(parts, spec.max_count).astype("int64")
    each = amounts / np.maximum(parts, 1)
    return _EventInput(spec, number, counts=parts, amounts=each)


# -- writing ------------------------------------------------------------------------------------------


def _timestamps(seconds: np.ndarray) -> Any:
    import numpy as np
    import pyarrow as pa

    return pa.array(np.rint(seconds * 1_000_000).astype("int64"), pa.timestamp("us", tz="UTC"))


def _write(path: Path, table: Any, dictionary: list[str]) -> None:
    """Parquet, zstd; dictionary encoding only for the columns that repeat (unique ids and times
    would only fill a dictionary to throw it away); no statistics (the history is read whole).
    A column kept dictionary-encoded (repeated text) is written as Parquet's dictionary as it is,
    not hashed again; the file holds no Arrow schema, so it reads back as the text it stands for."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd", compression_level=1, use_dictionary=dictionary,
                   column_encoding=_unique_text(table.column_names), write_statistics=False, store_schema=False)


def _unique_text(columns: list[str]) -> dict[str, str]:
    """Ids, keys and emails (each value its own) with their lengths apart from their bytes: the
    same file size as Parquet's plain encoding, and measured a quarter less time to compress."""
    return {name: "DELTA_LENGTH_BYTE_ARRAY" for name in columns if name in ("lead_id", "lead_key", "email")}


def _write_leads(path: Path, ids: Any, keys: Any, emails: Any, created: np.ndarray, attributes: dict[str, Any]) -> None:
    import pyarrow as pa

    columns: dict[str, Any] = {"lead_id": ids, "lead_key": keys, "email": emails, "created_at": _timestamps(created)}
    columns.update(attributes)
    _write(path, pa.table(columns), [name for name in columns if name not in LEAD_COLUMNS])


def _json_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _dictionary(indices: np.ndarray, values: Any) -> Any:
    """A dictionary-encoded column from row indices into ``values``: the repeated lead ids, types
    and ids of the events are written as they are built, with no hashing."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), values)


def _event_schema() -> Any:
    """Columns with a handful of values are dictionary arrays; lead ids and emails plain strings
    (measured: a large dictionary writes slower than the strings it stands for)."""
    import pyarrow as pa

    text, repeated = pa.string(), pa.dictionary(pa.int32(), pa.string())
    return pa.schema([("event_id", repeated), ("type", repeated), ("occurred_at", pa.timestamp("us", tz="UTC")),
                      ("email", text), ("anonymous_id", text), ("properties", text), ("traits", text),
                      ("source", repeated), ("lead_id", text), ("repeat", pa.int32()), ("repeat_every", pa.float64())])


class _Background:
    """One writer thread: Parquet encoding (C++, no GIL) of one piece runs while the next is built.
    Writes happen in submission order; at most ``depth`` pieces wait, bounding memory."""

    def __init__(self, depth: int = 2) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baton-import-writer")
        self.pending: list[Any] = []
        self.depth = depth

    def submit(self, work: Any, *args: Any) -> None:
        self.pending.append(self.pool.submit(work, *args))
        while len(self.pending) > self.depth:
            self.pending.pop(0).result()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for future in self.pending:
                future.result()  # (raises the writer's error, if any)
        finally:
            self.pool.shutdown(wait=True)


def _write_events(path: Path, mapping: Mapping, inputs: list[_EventInput], rows_kept: np.ndarray, ids: Any,
                  emails: Any, created: np.ndarray, summary: ImportSummary, background: _Background) -> None:
    """The events of every rule for the kept rows, built as whole columns (no per-event Python).

    A count or amount column is N equal events spread evenly from ``created_at`` over the window:
    it is written as one row with ``repeat`` N and ``repeat_every`` (window / N seconds), which
    readers expand into the N events (docs/backtest-data.md), ids ``<event_id>:<k>``. An event's
    id is unique within its lead (``<source>:e<rule>``), which is what dedupe needs. Each rule's
    rows are encoded by the background writer while the next rule's are built.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    window = mapping.spread_days * DAY
    created_us = np.rint(created * 1_000_000).astype("int64")
    schema = _event_schema()
    sources = pa.array([mapping.source], pa.string())
    with_email = emails.null_count < len(emails)
    writer = pq.ParquetWriter(path, schema, compression="zstd", compression_level=1,
                              use_dictionary=["event_id", "type", "source"],
                              column_encoding=_unique_text(schema.names), write_statistics=False)
    rows_array = pa.array(rows_kept, pa.int64())

    for item in inputs:
        spec = item.spec
        event_id = pa.array([f"{mapping.source}:e{item.number}"], pa.string())
        if isinstance(spec, ValueEvents):
            every_row = len(item.kinds) == len(rows_kept)  # (rows_kept: a subset of the rows, in order)
            kinds = item.kinds if every_row else item.kinds.take(rows_array)
            has = pc.is_valid(kinds)
            leads = np.flatnonzero(_mask(has))
            micros = created_us[leads] + (round(window * 1_000_000) if spec.at == "end" else 0)
            types = pc.drop_null(kinds)
            if not pa.types.is_dictionary(types.type):
                types = pc.dictionary_encode(types)
            props = (pc.filter(item.properties if every_row else item.properties.take(rows_array), has)
                     if item.properties is not None else pa.nulls(len(leads), pa.string()))
            repeat = np.ones(len(leads), dtype="int32")
        else:
            assert item.counts is not None
            counts = item.counts[rows_kept]
            leads = np.flatnonzero(counts > 0)
            repeat = counts[leads].astype("int32")
            micros = created_us[leads]
            types = _dictionary(np.zeros(len(leads), dtype="int32"), pa.array([spec.type], pa.string()))
            constant = dict(spec.properties)
            if isinstance(spec, AmountEvents):
                assert item.amounts is not None
                opening = _json_value(constant)[:-1] + ("," if constant else "") + f'"{spec.property}":'
                # Each distinct amount is formatted once: formatting a number costs more than finding it again.
                amounts = pc.dictionary_encode(pa.array(np.round(item.amounts[rows_kept[leads]], 3), pa.float64()))
                props = pc.binary_join_element_wise(pa.scalar(opening), pc.cast(amounts.dictionary, pa.string()),
                                                    pa.scalar("}"), "").take(amounts.indices)
            elif constant:
                props = pa.array([_json_value(constant)], pa.string()).take(pa.array(np.zeros(len(leads), "int64")))
            else:
                props = pa.nulls(len(leads), pa.string())
        n = len(leads)
        if not n:
            continue
        if isinstance(spec, ValueEvents):
            for kind, count in zip(*_counts(types), strict=True):
                summary.events[kind] = summary.events.get(kind, 0) + count
        else:
            summary.events[spec.type] = summary.events.get(spec.type, 0) + int(repeat.sum())
        take = pa.array(leads, pa.int64())
        background.submit(writer.write_table, pa.table({
            "event_id": _dictionary(np.zeros(n, dtype="int32"), event_id), "type": types,
            "occurred_at": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "email": emails.take(take) if with_email else pa.nulls(n, pa.string()),
            "anonymous_id": pa.nulls(n, pa.string()), "properties": props, "traits": pa.nulls(n, pa.string()),
            "source": _dictionary(np.zeros(n, dtype="int32"), sources), "lead_id": _strings(ids[leads]),
            "repeat": pa.array(repeat, pa.int32()), "repeat_every": pa.array(window / repeat, pa.float64()),
        }, schema=schema))
    background.submit(writer.close)


def _write_outcomes(path: Path, ids: Any, kinds: Any, at: np.ndarray, reasons: Any) -> None:
    import pyarrow as pa

    n = len(ids)
    _write(path, pa.table({
        "lead_id": ids, "email": pa.nulls(n, pa.string()), "outcome": kinds, "occurred_at": _timestamps(at),
        "reason": reasons if reasons is not None else pa.nulls(n, pa.string()),
    }), ["outcome", "reason"])
