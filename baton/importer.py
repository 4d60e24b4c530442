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
  ``spread_days``; events made from a column's values (a "last activity") happen at the end of that
  window; outcomes take their time from a column (``outcome.at``) or ``outcome.offset_days`` after
  ``created_at``;
- a row that cannot be read (text in a number column, an unknown outcome value) is skipped and
  counted, with the first examples kept; ``strict=True`` refuses the file at the first one.

The work is done column by column (pandas and pyarrow, imported on call), never row by row in
Python, so a million-row export costs a small multiple of reading it (``bench/import.py``).
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import time
import warnings
from collections import Counter
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

from chalicelib.engine import OUTCOMES
from chalicelib.errors import ValidationFailed
from chalicelib.events import KNOWN_TYPES
from chalicelib.rules.loader import Lines, failed, read_document, validation_errors
from chalicelib.rules.model import LEAD_FIELDS
from chalicelib.state import lead_id_for, lead_id_for_key

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

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


AttributeType = Literal["text", "number", "boolean", "date"]


class AttributeSpec(BaseModel):
    model_config = _Strict
    column: str = Field(min_length=1)
    type: AttributeType = "text"
    format: str = "ISO8601"  # for type: date


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
    for name in attributes if isinstance(attributes, dict) else ():
        try:
            attribute_column(str(name))
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


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"  # .csv, .tsv, .txt, .gz: whatever pandas reads as delimited text


def _sniff(path: Path, encoding: str) -> str:
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _header(path: Path, mapping: Mapping) -> tuple[list[str], str | None]:
    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names), None
    import pandas as pd

    delimiter = mapping.delimiter or _sniff(path, mapping.encoding)
    try:
        head = pd.read_csv(path, sep=delimiter, encoding=mapping.encoding, nrows=0, index_col=False)
    except UnicodeDecodeError:
        raise ImportRefused(f"{path}: not {mapping.encoding} text; set encoding: in the mapping") from None
    except pd.errors.EmptyDataError:
        raise ImportRefused(f"{path}: the file is empty") from None
    return [str(c) for c in head.columns], delimiter


def _read(path: Path, mapping: Mapping, columns: list[str], delimiter: str | None) -> pd.DataFrame:
    """The used columns: text with surrounding blanks removed and null tokens as missing (CSV), or
    the Parquet columns as they are typed."""
    import pandas as pd

    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns).to_pandas()
    try:
        with warnings.catch_warnings():
            # A trailing delimiter on data rows but not on the header is one empty field more: dropped.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            # Every column is read (not only the used ones) so that a row with more fields than the
            # header is refused, naming its line, rather than read shifted.
            frame = pd.read_csv(path, sep=delimiter, encoding=mapping.encoding, dtype=str, keep_default_na=False,
                                na_filter=False, index_col=False, engine="c")
    except pd.errors.ParserError as exc:
        raise ImportRefused(f"{path}: malformed: {str(exc).removeprefix('Error tokenizing data. C error: ')}") from None
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{path}: not {mapping.encoding} text (byte {exc.start}); set encoding: in the mapping") from None
    return frame[columns]


def _text(series: pd.Series, tokens: frozenset[str]) -> pd.Series:
    """Text with blanks trimmed; null tokens (and empty cells) as missing."""
    import pandas as pd

    if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
        if pd.api.types.is_float_dtype(series):
            values = series.dropna()
            if len(values) and (values == values.round()).all():  # 1.0 reads as "1" in value maps
                series = series.astype("Int64")
        series = series.astype("string").astype(object).where(series.notna(), None)
    text = series.str.strip()
    return _objects(text.where(~text.isin(tokens) & text.notna()))


def _objects(series: pd.Series) -> pd.Series:
    """An object column with None for missing (pandas' string columns use NaN, which is truthy)."""
    return series.astype(object).where(series.notna(), None)


# -- typed values -------------------------------------------------------------------------------------

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_RANGE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:(?:-|–|to)\s*\d+(?:\.\d+)?|\+)\s*$")


def _numbers(text: pd.Series) -> pd.Series:
    """Numbers from text: plain, with thousands separators, or a range (``50-200``, ``1000+``) read as
    its lower bound, as docs/sources.md promises for company sizes. Unreadable text is NaN."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(text):
        return text.astype("float64")
    numbers = pd.to_numeric(text, errors="coerce")
    retry = numbers.isna() & text.notna()
    if retry.any():  # only the few cells the fast path could not read go through the regexes
        cleaned = text[retry].str.replace(_THOUSANDS, "", regex=True)
        ranged = cleaned.str.extract(_RANGE, expand=False)
        cleaned = ranged.where(ranged.notna(), cleaned)
        numbers.loc[retry] = pd.to_numeric(cleaned, errors="coerce")
    return numbers.astype("float64")


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _booleans(text: pd.Series) -> pd.Series:
    lowered = text.str.lower()
    out = lowered.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
    return out.astype("boolean")


def _times(values: pd.Series, fmt: str) -> pd.Series:
    """Epoch seconds (float, NaN where unreadable) from a column of times."""
    import pandas as pd

    if fmt in ("epoch_s", "epoch_ms"):
        numbers = _numbers(values) if not pd.api.types.is_numeric_dtype(values) else values.astype("float64")
        return numbers / 1000.0 if fmt == "epoch_ms" else numbers
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
    else:
        parsed = pd.to_datetime(values, format=fmt, utc=True, errors="coerce")
    return ((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).astype("float64")


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

    def drop(self, bad: np.ndarray, reason: str, column: str, values: pd.Series | None = None,
             show_value: bool = True) -> None:
        import numpy as np

        bad = np.asarray(bad, dtype=bool) & self.keep
        count = int(bad.sum())
        if not count:
            return
        where = np.flatnonzero(bad)
        if self.strict:  # refused once every check ran, at the earliest row
            row = int(where[0])
            value = f" ({values.iloc[row]!r})" if values is not None and show_value else ""
            found = (row, f"row {row + self.first_row}, column {column!r}: {reason}{value}")
            self.first_bad = min(self.first_bad, found) if self.first_bad else found
        self.keep &= ~bad
        self.summary.skipped[reason] = self.summary.skipped.get(reason, 0) + count
        examples = self.summary.examples.setdefault(reason, [])
        for row in where[: EXAMPLES - len(examples)]:
            example: dict[str, Any] = {"row": int(row) + self.first_row, "column": column}
            if values is not None and show_value:
                example["value"] = str(values.iloc[int(row)])
            examples.append(example)


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
                strict: bool = False) -> ImportSummary:
    """Import one export into ``out_dir`` (created if needed); returns what happened.

    Raises ``ImportRefused`` for a file that cannot be imported and ``ValidationFailed`` when the
    mapping names a column the file does not have.
    """
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    source = Path(path)
    if not source.exists():
        raise ImportRefused(f"{source}: no such file")
    summary = ImportSummary(file=str(source))
    header, delimiter = _header(source, mapping)
    used = _check_columns(mapping, header, lines or {})
    frame = _read(source, mapping, used, delimiter)
    n = len(frame)
    summary.rows = n
    summary.unmapped_columns = [c for c in header if c not in set(used) and not _empty_header(c)]
    tokens = mapping.tokens
    text: dict[str, pd.Series] = {}

    def column(name: str) -> pd.Series:
        if name not in text:
            text[name] = _text(frame[name], tokens)
        return text[name]

    rows = _Rows(n, summary, strict, first_row=2 if _kind(source) == "csv" else 1)

    # The lead: key, email, id.
    if isinstance(mapping.lead_key, KeyColumn):
        keys = column(mapping.lead_key.column)
        rows.drop(keys.isna().to_numpy(), "lead_key is empty", mapping.lead_key.column, show_value=False)
    else:
        keys = pd.Series((np.arange(n) + rows.first_row).astype(str), dtype=object)
    emails = pd.Series([None] * n, dtype=object)
    if mapping.email:
        found = _objects(column(mapping.email).str.lower())
        bad = found.notna() & ~found.str.contains("@", regex=False, na=False).fillna(False).astype(bool)
        if bad.any():
            summary.notes.append(f"{int(bad.sum()):,} values of {mapping.email!r} are not addresses: those leads keep "
                                 "their key and no email")
            found = _objects(found.where(~bad))
        emails = found

    # When the lead was created.
    created = _created(mapping, frame, column, rows)

    # Attributes, typed.
    attributes: dict[str, pd.Series] = {}
    for name, spec in mapping.attributes.items():
        values = column(spec.column)
        if spec.type == "text":
            attributes[attribute_column(name)] = values
            continue
        if spec.type == "number":
            typed: pd.Series = _numbers(values)
            reason = "text in a number column"
        elif spec.type == "boolean":
            typed = _booleans(values)
            reason = "not a yes/no value"
        else:
            seconds = _times(values, spec.format)
            typed = pd.Series(pd.to_datetime(seconds, unit="s", utc=True).dt.strftime("%Y-%m-%d"), index=values.index)
            typed = _objects(typed.where(seconds.notna()))
            reason = "not a date"
        rows.drop((typed.isna() & values.notna()).to_numpy(), reason, spec.column, values)
        attributes[attribute_column(name)] = typed

    # Summary columns that become events: read now (a bad number skips the row), built later.
    event_inputs = [_event_input(i, spec, column, rows, summary) for i, spec in enumerate(mapping.events)]

    # The outcome.
    outcome_kind = outcome_at = reasons = None
    if mapping.outcome:
        rule = mapping.outcome
        values = column(rule.column)
        kinds = values.map(lambda v: rule.values.get(v, "?") if v is not None else None)
        unknown = (kinds == "?").to_numpy()
        rows.drop(unknown, "unknown outcome value", rule.column, values)
        outcome_kind = _objects(kinds.where(~unknown))
        if rule.at is not None:
            outcome_at = _times(column(rule.at.column), rule.at.format).to_numpy()
        else:
            outcome_at = np.full(n, np.nan)
        if rule.offset_days is not None:
            outcome_at = np.where(np.isnan(outcome_at), created + rule.offset_days * DAY, outcome_at)
        # A date without a time (Salesforce's ConvertedDate) on the day the lead was created is
        # midnight, before it: it happened that day, after the lead existed.
        same_day = (outcome_at < created) & (created - outcome_at < DAY)
        outcome_at = np.where(same_day, created, outcome_at)
        has = outcome_kind.notna().to_numpy()
        at_column = rule.at.column if rule.at else rule.column
        rows.drop(has & np.isnan(outcome_at), "outcome without a time", at_column,
                  column(rule.at.column) if rule.at else None)
        rows.drop(has & (outcome_at < created), "outcome before created_at", at_column,
                  column(rule.at.column) if rule.at else None)
        reasons = column(rule.reason) if rule.reason else None
        if rule.offset_days is not None and rule.offset_days <= mapping.spread_days:
            summary.notes.append(f"outcome.offset_days ({rule.offset_days:g}) is not after the spread window "
                                 f"(spread_days {mapping.spread_days:g}): some events come after the outcome")

    # One row per lead: the first row of a key (or an email) wins.
    lead_ids = np.empty(n, dtype=object)
    for i, (key, email) in enumerate(zip(keys.tolist(), emails.tolist(), strict=True)):
        lead_ids[i] = lead_id_for(email) if email else lead_id_for_key(mapping.source, key) if key else None
    duplicate = pd.Series(lead_ids).where(rows.keep, None)
    duplicate = (duplicate.duplicated(keep="first") & duplicate.notna()).to_numpy()
    rows.drop(duplicate, "duplicate lead (same key or email as an earlier row)",
              mapping.lead_key.column if isinstance(mapping.lead_key, KeyColumn) else "(row number)", keys)

    rows.refuse_if_strict()
    keep = rows.keep
    summary.leads = int(keep.sum())
    summary.with_email = int((emails.notna().to_numpy() & keep).sum())
    if summary.leads:
        summary.start = _iso(float(np.nanmin(created[keep])))
        summary.end = _iso(float(np.nanmax(created[keep])))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = np.flatnonzero(keep)
    ids = lead_ids[index]
    _write_leads(out / "leads.parquet", ids, keys.to_numpy(dtype=object)[index], emails.to_numpy(dtype=object)[index],
                 created[index], {name: series.iloc[index] for name, series in attributes.items()})
    _write_events(out / "events.parquet", mapping, event_inputs, index, ids, emails.to_numpy(dtype=object)[index],
                  created[index], summary)
    summary.written = {"leads": str(out / "leads.parquet"), "events": str(out / "events.parquet")}
    if mapping.outcome and outcome_kind is not None and outcome_at is not None:
        kinds = outcome_kind.to_numpy(dtype=object)[index]
        has = pd.notna(kinds)
        summary.outcomes = dict(Counter(kinds[has].tolist()))
        summary.no_outcome = int((~has).sum())
        _write_outcomes(out / "outcomes.parquet", ids[has], kinds[has], outcome_at[index][has],
                        reasons.to_numpy(dtype=object)[index][has] if reasons is not None else None)
        summary.written["outcomes"] = str(out / "outcomes.parquet")
    else:
        summary.no_outcome = summary.leads
    undeclared = sorted(kind for kind in summary.events if kind not in KNOWN_TYPES)
    if undeclared:
        summary.notes.append(f"event types rule sets cannot score yet (not built in): {', '.join(undeclared)}")
    summary.seconds = time.perf_counter() - started
    (out / "import-summary.json").write_text(json.dumps(summary.to_dict(), indent=1, default=str) + "\n")
    summary.written["summary"] = str(out / "import-summary.json")
    return summary


def _empty_header(name: str) -> bool:
    return name.startswith("Unnamed: ") or not name.strip()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _created(mapping: Mapping, frame: pd.DataFrame, column: Any, rows: _Rows) -> np.ndarray:
    import numpy as np

    spec = mapping.created_at
    if isinstance(spec, TimeColumn):
        values = column(spec.column)
        seconds = _times(values, spec.format)
        rows.drop(values.isna().to_numpy(), "created_at is empty", spec.column, show_value=False)
        rows.drop((seconds.isna() & values.notna()).to_numpy(), "created_at is not a time", spec.column, values)
        return seconds.to_numpy()
    n = len(frame)
    start = datetime.combine(spec.between[0], datetime.min.time(), tzinfo=timezone.utc).timestamp()
    end = datetime.combine(spec.between[1] + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc).timestamp()
    if spec.order_by:
        order = column(spec.order_by)
        rows.drop(order.isna().to_numpy(), "order_by value is empty", spec.order_by, show_value=False)
        numbers = _numbers(order)
        key = numbers if numbers.notna().sum() == order.notna().sum() else order
        ranks = key.rank(method="first", na_option="bottom").to_numpy() - 1
    else:
        ranks = np.arange(n, dtype="float64")
    return start + (end - start) * ranks / max(n, 1)


@dataclass
class _EventInput:
    spec: CountEvents | AmountEvents | ValueEvents
    number: int  # position in the mapping's events list
    counts: np.ndarray | None = None  # events per row (count and amount rules)
    amounts: np.ndarray | None = None  # amount per event (amount rules)
    kinds: np.ndarray | None = None  # event type per row (value rules; None: no event)
    originals: np.ndarray | None = None  # the column's value per row (value rules)


def _event_input(number: int, spec: CountEvents | AmountEvents | ValueEvents, column: Any, rows: _Rows,
                 summary: ImportSummary) -> _EventInput:
    import numpy as np

    if isinstance(spec, ValueEvents):
        values = column(spec.column)
        kinds = values.map(lambda v: spec.values.get(v, "?") if v is not None else None)
        missing = kinds == "?"
        if missing.any():
            counts = Counter(values[missing].tolist())
            summary.unmapped_values[spec.column] = dict(counts)
        kinds = _objects(kinds.where(~missing))
        return _EventInput(spec, number, kinds=kinds.to_numpy(dtype=object),
                           originals=values.to_numpy(dtype=object))

    def read(name: str) -> np.ndarray:
        values = column(name)
        numbers = _numbers(values)
        rows.drop((numbers.isna() & values.notna()).to_numpy(), "text in a number column", name, values)
        rows.drop((numbers < 0).to_numpy(), "negative number in an event column", name, values)
        return numbers.to_numpy()

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
    with np.errstate(divide="ignore", invalid="ignore"):
        each = np.where(parts > 0, amounts / np.maximum(parts, 1), 0.0)
    return _EventInput(spec, number, counts=parts, amounts=each)


# -- writing ------------------------------------------------------------------------------------------


def _timestamps(seconds: np.ndarray) -> Any:
    import numpy as np
    import pyarrow as pa

    micros = np.rint(seconds * 1_000_000).astype("int64")
    return pa.array(micros, pa.timestamp("us", tz="UTC"))


def _write_leads(path: Path, ids: np.ndarray, keys: np.ndarray, emails: np.ndarray, created: np.ndarray,
                 attributes: dict[str, pd.Series]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {
        "lead_id": pa.array(ids, pa.string()),
        "lead_key": pa.array(keys, pa.string()),
        "email": pa.array(emails, pa.string()),
        "created_at": _timestamps(created),
    }
    for name, series in attributes.items():
        columns[name] = pa.Array.from_pandas(series.reset_index(drop=True))
    pq.write_table(pa.table(columns), path, compression="zstd")


def _json_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _write_events(path: Path, mapping: Mapping, inputs: list[_EventInput], index: np.ndarray, ids: np.ndarray,
                  emails: np.ndarray, created: np.ndarray, summary: ImportSummary) -> int:
    """Every event of every rule for the kept rows, built as whole columns (no per-event Python)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    window = mapping.spread_days * DAY
    id_array = pa.array(ids, pa.string())
    email_array = pa.array(emails, pa.string())
    parts: list[pa.Table] = []
    for item in inputs:
        spec = item.spec
        if isinstance(spec, ValueEvents):
            assert item.kinds is not None and item.originals is not None
            kinds = item.kinds[index]
            has = np.flatnonzero(pd.notna(kinds))
            rows = has
            k = np.zeros(len(rows), dtype="int64")
            ts = created[rows] + (window if spec.at == "end" else 0.0)
            types = pa.array(kinds[rows], pa.string())
            if spec.property:
                originals = item.originals[index][rows]
                props = pa.array([_json_value({spec.property: v}) for v in originals], pa.string())
            else:
                props = pa.nulls(len(rows), pa.string())
        else:
            assert item.counts is not None
            counts = item.counts[index]
            rows = np.repeat(np.arange(len(index)), counts)
            starts = np.cumsum(counts) - counts
            k = np.arange(len(rows)) - np.repeat(starts, counts)
            n_each = np.repeat(counts, counts)
            ts = created[rows] + window * k / np.maximum(n_each, 1)
            types = pa.array(np.full(len(rows), spec.type, dtype=object), pa.string())
            constant = dict(spec.properties)
            if isinstance(spec, AmountEvents):
                assert item.amounts is not None
                amounts = np.round(item.amounts[index][rows], 3)
                prefix = _json_value(constant)[:-1] + ("," if constant else "") + f'"{spec.property}":'
                props = pc.binary_join_element_wise(
                    pa.scalar(prefix), pc.cast(pa.array(amounts, pa.float64()), pa.string()), pa.scalar("}"), "")
            elif constant:
                props = pa.array(np.full(len(rows), _json_value(constant), dtype=object), pa.string())
            else:
                props = pa.nulls(len(rows), pa.string())
        if not len(rows):
            continue
        kind_names = types.unique().to_pylist()
        for kind in kind_names:
            summary.events[kind] = summary.events.get(kind, 0) + int(pc.sum(pc.equal(types, kind)).as_py() or 0)
        take = pa.array(rows, pa.int64())
        lead = id_array.take(take)
        event_ids = pc.binary_join_element_wise(
            lead, pa.scalar(f"e{item.number}"), pc.cast(pa.array(k, pa.int64()), pa.string()), ":")
        parts.append(pa.table({
            "event_id": event_ids,
            "type": types,
            "occurred_at": _timestamps(ts),
            "email": email_array.take(take),
            "anonymous_id": pa.nulls(len(rows), pa.string()),
            "properties": props,
            "traits": pa.nulls(len(rows), pa.string()),
            "source": pa.array(np.full(len(rows), mapping.source, dtype=object), pa.string()),
            "lead_id": lead,
        }))
    schema = pa.schema([("event_id", pa.string()), ("type", pa.string()), ("occurred_at", pa.timestamp("us", tz="UTC")),
                        ("email", pa.string()), ("anonymous_id", pa.string()), ("properties", pa.string()),
                        ("traits", pa.string()), ("source", pa.string()), ("lead_id", pa.string())])
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if table.num_rows:  # in time order, as a store would return them (readers sort anyway)
        table = table.take(pc.sort_indices(table, sort_keys=[("occurred_at", "ascending")]))
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def _write_outcomes(path: Path, ids: np.ndarray, kinds: np.ndarray, at: np.ndarray, reasons: np.ndarray | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "lead_id": pa.array(ids, pa.string()),
        "email": pa.nulls(len(ids), pa.string()),
        "outcome": pa.array(kinds, pa.string()),
        "occurred_at": _timestamps(at),
        "reason": pa.array(reasons, pa.string()) if reasons is not None else pa.nulls(len(ids), pa.string()),
    }), path, compression="zstd")
