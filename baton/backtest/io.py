"""History files: events, leads and outcomes as CSV or Parquet (layouts in docs/backtest-data.md).

The format follows the file name: ``.csv`` (or ``.csv.gz``) or ``.parquet`` (``.pq``). CSV needs
only the standard library; Parquet imports pyarrow inside the functions that use it, so importing
this module never loads pyarrow or pandas.

Times (``occurred_at``) are read from epoch seconds (a number), an ISO 8601 text (``Z`` or an
offset; a naive time is UTC) or a Parquet timestamp; they are written as ISO 8601 UTC text with
microseconds in CSV and as ``timestamp[us, UTC]`` in Parquet, so any time with at most microsecond
precision survives a round trip exactly.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from baton.backtest.replay import paused_gc
from chalicelib.attributes import custom_key, stored_names
from chalicelib.engine import OUTCOMES
from chalicelib.errors import ValidationFailed
from chalicelib.events import Event, content_event_id
from chalicelib.rules.loader import parse_vocabulary_text
from chalicelib.rules.model import Vocabulary
from chalicelib.state import lead_id_for
from chalicelib.timeline import Outcome

EVENT_COLUMNS = ("event_id", "type", "occurred_at", "email", "anonymous_id", "properties", "traits", "source", "lead_id")
OUTCOME_COLUMNS = ("lead_id", "email", "outcome", "occurred_at", "reason")
TIME_COLUMNS = ("occurred_at", "ts", "timestamp", "created_at")
_NOT_TRAITS = frozenset({"email", "lead_id", "lead_key", *TIME_COLUMNS})


def _kind(path: str | Path) -> str:
    name = str(path).lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"{path}: unknown file type; use .csv, .csv.gz or .parquet")


# -- times -------------------------------------------------------------------------------------------


def parse_time(value: Any) -> float:
    """Epoch seconds from a number, a numeric text, an ISO 8601 text or a datetime."""
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if hasattr(value, "timestamp") and callable(value.timestamp):  # pandas.Timestamp and friends
        return float(value.timestamp())
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use epoch seconds or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _micros(ts: float) -> int:
    return round(ts * 1_000_000)


# -- JSON columns ------------------------------------------------------------------------------------


def _json_reader(shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Callable[[Any], dict[str, Any]]:
    """Decode JSON object cells, once per distinct text (many events share the same properties),
    each then put in ``shape`` (once as well)."""
    cache: dict[str, dict[str, Any]] = {}

    def read(cell: Any) -> dict[str, Any]:
        if cell is None or cell == "":
            return {}
        if isinstance(cell, dict):
            return cell
        found = cache.get(cell)
        if found is None:
            found = json.loads(cell)
            if not isinstance(found, dict):
                raise ValueError(f"expected a JSON object, got {cell[:80]!r}")
            if shape is not None:
                found = shape(found)
            cache[cell] = found
        return found

    return read


def _json_writer() -> Callable[[Any], str]:
    """Encode mappings, once per object (generated histories share property dicts between events)."""
    cache: dict[int, str] = {}

    def write(value: Any) -> str:
        if not value:
            return ""
        key = id(value)
        found = cache.get(key)
        if found is None:
            found = cache[key] = json.dumps(dict(value), separators=(",", ":"), default=str)
        return found

    return write


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


# -- CSV helpers ---------------------------------------------------------------------------------------


def _open_text(path: str | Path, mode: str) -> IO[str]:
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rt" if mode == "r" else "wt", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")  # the caller closes it


def _csv_rows(path: str | Path) -> Iterator[dict[str, str]]:
    with _open_text(path, "r") as handle:
        yield from csv.DictReader(handle)


def _write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    with _open_text(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


def _parquet_columns(path: str | Path) -> dict[str, Any]:
    """Column name -> pyarrow ChunkedArray."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return {name: table.column(name) for name in table.column_names}


def _time_values(column: Any) -> list[float | None]:
    """Epoch seconds from a Parquet column of timestamps, numbers or ISO texts, without per-row pandas."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        divisor = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        return [None if v is None else v / divisor for v in column.cast(pa.int64()).to_pylist()]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return [None if v is None else float(v) for v in column.to_pylist()]
    return [None if v is None or v == "" else parse_time(v) for v in column.to_pylist()]


def _first_time_column(names: Iterable[str]) -> str | None:
    present = set(names)
    return next((c for c in TIME_COLUMNS if c in present), None)


# -- events ------------------------------------------------------------------------------------------


def _event(row_no: int, event_id: Any, type_: Any, ts: float | None, email: Any, anonymous: Any, props: dict[str, Any],
           traits: dict[str, Any], source: Any, lead_id: Any = None) -> Event:
    if not type_:
        raise ValueError(f"row {row_no}: 'type' is empty")
    if ts is None:
        raise ValueError(f"row {row_no}: 'occurred_at' is empty")
    email = _text(email)
    anonymous = _text(anonymous)
    lead_id = _text(lead_id)
    source = _text(source) or "import"
    if not event_id:
        event_id = content_event_id(source, str(type_), ts, email or lead_id or anonymous or "", props)
    return Event(str(event_id), str(type_), ts, email, anonymous, props, traits, source, lead_id)


def read_events(path: str | Path) -> list[Event]:
    """Events in file order (``backtest`` sorts by time itself)."""
    with paused_gc():
        return _read_events(path)


def _traits(traits: dict[str, Any]) -> dict[str, Any]:
    """A history event's traits named as a lead stores them (``custom.plan`` and ``custom: {plan}``
    are ``plan``, as on the live paths: rules read it as ``custom.plan``)."""
    try:
        return stored_names(traits, "traits")
    except ValidationFailed as exc:
        raise ValueError(str(exc)) from None


def _read_events(path: str | Path) -> list[Event]:
    decode_props, decode_traits = _json_reader(), _json_reader(_traits)
    if _kind(path) == "csv":
        out = []
        time_column: str | None = None
        repeats: list[Any] = []
        every: list[Any] = []
        for n, row in enumerate(_csv_rows(path), start=2):
            if time_column is None:
                time_column = _first_time_column(row)
                if time_column is None:
                    raise ValueError(f"{path}: no time column; expected one of {', '.join(TIME_COLUMNS)}")
            cell = row.get(time_column)
            try:
                ts = parse_time(cell) if cell else None
                out.append(_event(n, row.get("event_id"), row.get("type"), ts, row.get("email"),
                                  row.get("anonymous_id"), decode_props(row.get("properties")),
                                  decode_traits(row.get("traits")), row.get("source"), row.get("lead_id")))
                repeats.append(int(row["repeat"]) if row.get("repeat") else 1)
                every.append(float(row["repeat_every"]) if row.get("repeat_every") else 0.0)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}" if str(exc).startswith("row") else f"{path}: row {n}: {exc}") from None
        return _expand(out, repeats, every) if any(r != 1 for r in repeats) else out
    columns = _parquet_columns(path)
    time_column = _first_time_column(columns)
    if time_column is None or "type" not in columns:
        raise ValueError(f"{path}: needs 'type' and a time column ({', '.join(TIME_COLUMNS)})")
    n_rows = len(columns["type"])

    def values(name: str) -> list[Any]:
        return columns[name].to_pylist() if name in columns else [None] * n_rows

    times = _time_values(columns[time_column])
    ids, types, emails, anonymous = values("event_id"), values("type"), values("email"), values("anonymous_id")
    props, traits, sources, lead_ids = values("properties"), values("traits"), values("source"), values("lead_id")
    out = []
    append = out.append
    make = Event
    rows = zip(ids, types, times, emails, anonymous, props, traits, sources, lead_ids, strict=True)
    i = 0
    try:
        for i, (event_id, type_, ts, email, anonymous_id, prop, trait, source, lead_id) in enumerate(rows):
            if event_id and ts is not None and type_ and source:  # the common, well-formed row
                append(make(event_id, type_, ts, email or None, anonymous_id or None,
                            decode_props(prop) if prop else {}, decode_traits(trait) if trait else {}, source,
                            lead_id or None))
            else:
                append(_event(i + 1, event_id, type_, ts, email, anonymous_id, decode_props(prop),
                              decode_traits(trait), source, lead_id))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}" if str(exc).startswith("row") else f"{path}: row {i + 1}: {exc}") from None
    if "repeat" in columns:
        return _expand(out, values("repeat"), values("repeat_every"))
    return out


def _expand(events: list[Event], repeats: Sequence[Any], every: Sequence[Any]) -> list[Event]:
    """Rows standing for several events (``repeat`` N, ``repeat_every`` seconds apart, as ``baton
    import`` writes summary columns) as their N events, ids ``<event_id>:<k>``."""
    out: list[Event] = []
    append = out.append
    for event, n, gap in zip(events, repeats, every, strict=True):
        if not n or n == 1:
            append(event)
            continue
        step = float(gap or 0.0)
        base, ts = event.event_id, event.ts
        for k in range(int(n)):
            append(replace(event, event_id=f"{base}:{k}", ts=ts + step * k))
    return out


def write_events(path: str | Path, events: Iterable[Event]) -> int:
    """Write events in the documented layout; returns the number written."""
    encode = _json_writer()
    if _kind(path) == "csv":
        return _write_csv(path, EVENT_COLUMNS, (
            (e.event_id, e.type, format_time(e.ts), e.email, e.anonymous_id, encode(e.properties), encode(e.traits),
             e.source, e.lead_id)
            for e in events
        ))
    import pyarrow as pa
    import pyarrow.parquet as pq

    listed = events if isinstance(events, list) else list(events)
    table = pa.table({
        "event_id": pa.array([e.event_id for e in listed], pa.string()),
        "type": pa.array([e.type for e in listed], pa.string()),
        "occurred_at": pa.array([_micros(e.ts) for e in listed], pa.timestamp("us", tz="UTC")),
        "email": pa.array([e.email for e in listed], pa.string()),
        "anonymous_id": pa.array([e.anonymous_id for e in listed], pa.string()),
        "properties": pa.array([encode(e.properties) for e in listed], pa.string()),
        "traits": pa.array([encode(e.traits) for e in listed], pa.string()),
        "source": pa.array([e.source for e in listed], pa.string()),
        "lead_id": pa.array([e.lead_id for e in listed], pa.string()),
    })
    pq.write_table(table, path, compression="zstd")
    return len(listed)


# -- outcomes ------------------------------------------------------------------------------------------


def _outcome(row_no: int, row: dict[str, Any], time_column: str | None) -> Outcome:
    outcome = _text(row.get("outcome"))
    if outcome not in OUTCOMES:
        raise ValueError(f"row {row_no}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    lead_id, email = _text(row.get("lead_id")), _text(row.get("email"))
    if not lead_id and not email:
        raise ValueError(f"row {row_no}: needs 'lead_id' or 'email'")
    cell = row.get(time_column) if time_column else None
    if cell is None or cell == "":
        raise ValueError(f"row {row_no}: 'occurred_at' is empty")
    return Outcome(outcome, parse_time(cell), lead_id=lead_id, email=email, reason=_text(row.get("reason")))


def _records(path: str | Path) -> Iterator[dict[str, Any]]:
    if _kind(path) == "csv":
        yield from _csv_rows(path)
        return
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    names = table.column_names
    time_column = _first_time_column(names)
    columns = {name: table.column(name).to_pylist() for name in names}
    if time_column is not None:
        columns[time_column] = _time_values(table.column(time_column))
    for i in range(table.num_rows):
        yield {name: values[i] for name, values in columns.items()}


def _attribute_names(path: str | Path, columns: Iterable[str]) -> dict[str, str]:
    """A leads file's columns -> the attributes they hold, named as a lead stores them: a column
    ``custom.plan`` is the custom attribute ``plan`` (rules read ``custom.plan``), like ``plan``."""
    try:
        return {name: custom_key(name, f"column {name!r}") if isinstance(name, str) and name not in _NOT_TRAITS
                else name for name in columns}  # (not a str: the csv module's key for a row's extra fields)
    except ValidationFailed as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_outcomes(path: str | Path) -> list[Outcome]:
    out = []
    time_column: str | None = None
    for n, row in enumerate(_records(path), start=2 if _kind(path) == "csv" else 1):
        if time_column is None:
            time_column = _first_time_column(row)
        try:
            out.append(_outcome(n, row, time_column))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return out


def write_outcomes(path: str | Path, outcomes: Iterable[Outcome]) -> int:
    if _kind(path) == "csv":
        return _write_csv(path, OUTCOME_COLUMNS, (
            (o.lead_key, o.email, o.outcome, format_time(o.ts), o.reason) for o in outcomes
        ))
    import pyarrow as pa
    import pyarrow.parquet as pq

    listed = list(outcomes)
    table = pa.table({
        "lead_id": pa.array([o.lead_key for o in listed], pa.string()),
        "email": pa.array([o.email for o in listed], pa.string()),
        "outcome": pa.array([o.outcome for o in listed], pa.string()),
        "occurred_at": pa.array([_micros(o.ts) for o in listed], pa.timestamp("us", tz="UTC")),
        "reason": pa.array([o.reason for o in listed], pa.string()),
    })
    pq.write_table(table, path, compression="zstd")
    return len(listed)


# -- leads ---------------------------------------------------------------------------------------------


def read_leads(path: str | Path, at: float | str | datetime | None = None) -> list[Event]:
    """Each row (an email or a lead id, and attribute columns) as an ``identify`` event carrying the
    attributes as traits (``lead_key``, the source system's own key, is not an attribute).

    The event's time is the row's ``occurred_at`` / ``created_at`` column, else ``at``; blank cells
    are not traits (blank never erases an attribute). Replaying these before the other events gives
    every lead its known attributes from the start.
    """
    default_ts = parse_time(at) if at is not None else None
    out = []
    names: dict[str, str] = {}  # column -> the attribute it holds, named as a lead stores it (once per column)
    for n, row in enumerate(_records(path), start=2 if _kind(path) == "csv" else 1):
        email = _text(row.get("email"))
        lead_id = _text(row.get("lead_id"))
        if email:
            email = email.strip().lower()
        elif not lead_id:
            raise ValueError(f"{path}: row {n}: needs 'email' or 'lead_id'")
        time_column = _first_time_column(row)
        cell = row.get(time_column) if time_column else None
        ts = parse_time(cell) if cell not in (None, "") else default_ts
        if ts is None:
            raise ValueError(f"{path}: row {n}: no occurred_at/created_at value; pass read_leads(path, at=...)")
        if len(names) != len(row):
            names = _attribute_names(path, row)
        traits = {names[k]: v for k, v in row.items() if k not in _NOT_TRAITS and v not in (None, "")}
        subject = lead_id_for(email) if email else str(lead_id)
        event_id = content_event_id("import", "identify", ts, subject, traits)
        out.append(Event(event_id, "identify", ts, email, None, {}, traits, "import", None if email else lead_id))
    return out


# -- a directory of files ------------------------------------------------------------------------------

_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


def _find(directory: Path, stem: str) -> Path | None:
    return next((directory / f"{stem}{s}" for s in _SUFFIXES if (directory / f"{stem}{s}").exists()), None)


def read_lead_keys(directory: str | Path) -> dict[str, str]:
    """Lead id -> the source system's own key, from a ``leads`` file that has both (as ``baton
    import`` writes it); empty when there is none."""
    path = _find(Path(directory), "leads")
    if path is None:
        return {}
    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if "lead_id" not in names or "lead_key" not in names:
            return {}
        table = pq.read_table(path, columns=["lead_id", "lead_key"])
        pairs: Iterable[tuple[Any, Any]] = zip(table.column("lead_id").to_pylist(),
                                               table.column("lead_key").to_pylist(), strict=True)
    else:
        pairs = ((row.get("lead_id"), row.get("lead_key")) for row in _csv_rows(path))
    return {str(lead_id): str(key) for lead_id, key in pairs if lead_id and key}


VOCABULARY_FILE = "vocabulary.yaml"


def write_vocabulary(directory: str | Path, vocabulary: Vocabulary, origin: str) -> Path:
    """The declarations a history was made under, as a rule set writes them (``origin`` says which
    rule set, in the file's first line). Written even when empty: a history imported again into the
    same directory must not keep another rule set's declarations."""
    import yaml

    path = Path(directory) / VOCABULARY_FILE
    data = vocabulary.model_dump(mode="json", exclude_defaults=True)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110) if data else "{}\n"
    path.write_text(f"# The event types and custom attributes of this history, as {origin} declares them.\n"
                    "# baton rules suggest copies them into the rule sets it writes.\n" + body, encoding="utf-8")
    return path


def read_vocabulary(directory: str | Path) -> Vocabulary:
    """A history's ``vocabulary.yaml`` (empty when it has none: a history made by hand, or imported
    or exported before histories carried one)."""
    path = Path(directory) / VOCABULARY_FILE
    if not path.exists():
        return Vocabulary()
    try:
        return parse_vocabulary_text(path.read_text(encoding="utf-8"))
    except ValidationFailed as exc:
        raise ValueError(f"{VOCABULARY_FILE}: {exc}") from None


def read_history(directory: str | Path, leads_at: float | str | None = None) -> tuple[list[Event], list[Outcome]]:
    """``events.*`` (required), ``outcomes.*`` and ``leads.*`` (optional) from one directory.

    This is what ``baton export`` writes; a ``leads`` file's rows become identify events (``leads_at``
    is their time when the file has no time column).
    """
    folder = Path(directory)
    events_path = _find(folder, "events")
    if events_path is None:
        raise FileNotFoundError(f"{folder}: no events.parquet / events.csv")
    events = read_events(events_path)
    leads_path = _find(folder, "leads")
    if leads_path is not None:
        events = read_leads(leads_path, at=leads_at) + events
    outcomes_path = _find(folder, "outcomes")
    return events, read_outcomes(outcomes_path) if outcomes_path is not None else []
