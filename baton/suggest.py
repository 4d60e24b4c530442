"""``baton rules suggest``: points learned from outcomes, written as an ordinary rule set, proven on a holdout.

The steps, each a function below:

1. ``lead_rows``: each lead's attributes, per-event-type counts and amount totals (an event
   property's numbers added up) *before its first outcome*, read through the same timeline the
   backtest replays (routing, dedupe, adoption, ``merge_traits``).
2. ``split``: the leads before the holdout learn; the holdout (``--holdout-after`` or the newest
   ``--holdout-fraction``, chosen as ``baton backtest`` chooses it) only measures.
3. ``candidate_features``: numbers become "at least" steps at a few quantiles (plus "not given");
   categories one feature per common value, rare values merged into "another value"; events one
   "each of the first k" feature per cap k (the engagement rule ``points`` with ``caps.max_count: k``);
   amounts one "each of the first T" feature per quantile edge T, min(total, T) / T (the amount rule
   ``points`` per ``T`` with ``caps.max_points: points``, which awards exactly that).
4. ``leaks``: a field that alone predicts the outcome at least as well as all the other fields
   together (out-of-fold AUC), or alone with AUC >= 0.95, is left out and listed.
5. ``fit_scorecard``: an L1 logistic regression on the binary/capped features, its strength chosen
   on the newest part of the training leads (sparsest within 0.002 AUC of the best, at most
   ``max_rules`` rules); coefficients become integer points, ``POINTS_TO_DOUBLE`` points doubling
   the odds; rules whose whole effect is under ``MIN_EFFECT`` points are dropped.
6. ``write_ruleset``: fit rules, engagement rules, grade bands and MQL/SQL conditions on
   fit + engagement for the weekly capacity, as YAML with each rule's support and conversion.
7. ``suggest`` measures the file with the backtest ``baton backtest`` runs, and two baselines on
   the same raw columns and split (logistic regression and gradient boosting).

scikit-learn is an analyst dependency: imported here, never by ``chalicelib`` or ``app.py``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

import yaml

from baton.backtest.report import Report, measure
from baton.metrics import LEAK_AUC
from chalicelib.attributes import ATTRIBUTES, LEAD_FIELDS
from chalicelib.engine.engagement import amount_of
from chalicelib.engine.fit import merge_traits, new_lead
from chalicelib.events import EVENT_TYPE, KNOWN_TYPES, Event
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.conditions import Context, as_number
from chalicelib.rules.loader import parse_ruleset_text
from chalicelib.rules.model import AttributeDeclaration, RuleSet, Vocabulary, type_mismatch
from chalicelib.timeline import Outcome, Routed, in_time_order, route

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

WEEK = 7 * 86400.0
POINTS_TO_DOUBLE = 20  # the stated scale: this many points double the odds of winning
MIN_EFFECT = 3  # points: a rule whose whole effect is smaller is dropped
MAX_EDGES = 5  # "at least" steps per number
COUNT_CAPS = (1, 3, 10)  # engagement caps tried per event type ("each of the first k")
# Amounts (an event property added up, as an amount rule does): "each of the first T" at these
# quantiles of the leads' totals, the whole points earned in proportion up to T.
AMOUNT_QUANTILES = (0.25, 0.5, 0.75, 0.9)
SECONDS = frozenset({"seconds", "secs", "duration_seconds"})
MAX_VALUES = 20  # category values kept per field (the rest merge into "another value")
DEFAULT_SHARE = 0.1  # SQL share when no capacity is given
HALF_LIFE_DAYS = 30  # the written rule set's engagement decay
LN2 = math.log(2)
PATH_TOL = 1e-3  # liblinear's tolerance while choosing the L1 strength (the final fit keeps its 1e-4): the
# same choice on the X Education, planted and bench histories, a fifth of the time
# Never scored: they identify a person (and would only learn who converted), or are the score itself.
PERSONAL = frozenset({"email", "email_domain", "first_name", "last_name", "phone"})
ALWAYS_OUT = frozenset({"lead_key"})
NOT_SCORED_EVENTS = frozenset({"identify"})


# -- 1. leads as rows ----------------------------------------------------------------------------------


@dataclass
class LeadRow:
    lead_id: str
    first_seen: float
    won: bool | None  # None: no outcome yet (not learned from, not measured)
    attrs: dict[str, Any]  # the engine's attribute dict before the first outcome (custom nested)
    flat: dict[str, Any]  # the same as rule fields: ``country``, ``custom.occupation``
    counts: Counter[str]
    events: list[Event] = field(default_factory=list)  # before the first outcome, in time order
    # (event type, property) -> the sum of its positive numbers before the first outcome (what an
    # amount rule ``amount: {property: ...}`` on that type adds up: seconds on site, an order's value)
    amounts: dict[tuple[str, str], float] = field(default_factory=dict)


def lead_rows(events: Sequence[Event], outcomes: Sequence[Outcome], routed: Routed | None = None
              ) -> tuple[list[LeadRow], dict[str, int]]:
    """Every lead, in order of first appearance; and per attribute, how many leads first had it
    after their first outcome (the backtest's cheap timing check, on the same timelines).
    ``routed``: ``events`` and ``outcomes`` routed already (``route``, one share)."""
    if routed is None:
        routed = route(events, sorted(outcomes, key=attrgetter("ts")))
    rows: list[LeadRow] = []
    late: Counter[str] = Counter()
    for lead_id in routed.order:
        timeline = routed.timelines[lead_id]
        state = new_lead(lead_id, timeline.email)
        counts: Counter[str] = Counter()
        amounts: dict[tuple[str, str], float] = {}
        before: list[Event] = []
        first = math.inf
        outcome_seen = False
        won: bool | None = None
        late_here: set[str] = set()
        for item in timeline.items.values():
            if not isinstance(item, Event):
                outcome_seen = True
                won = bool(won) or item.outcome == "won"
                continue
            first = min(first, item.ts)
            if outcome_seen:
                if item.traits:
                    late_here.update(_flat_name(k) for k in item.traits)
                continue
            if item.traits:
                merge_traits(state, item.traits)
            if item.type not in NOT_SCORED_EVENTS:
                counts[item.type] += 1
                if item.properties:
                    for key, value in item.properties.items():
                        if _amount(key, value):
                            amounts[item.type, key] = amounts.get((item.type, key), 0.0) + value
            before.append(item)
        flat = _flatten(state.attributes)
        late.update(name for name in late_here if not _present(flat.get(name)))
        rows.append(LeadRow(lead_id, first, won, state.attributes, flat, counts, before, amounts))
    return rows, dict(late)


def _amount(key: str, value: Any) -> bool:
    """A property an amount rule could add up: a positive number (as JSON carries it) not named as an id."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)
            and key != "id" and not key.endswith("_id"))


def _flat_name(key: str) -> str:
    return key if key in LEAD_FIELDS else f"custom.{key}"


def _flatten(attrs: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in attrs.items() if k != "custom" and k not in PERSONAL}
    for key, value in (attrs.get("custom") or {}).items():
        if not isinstance(value, (dict, list)):
            flat[f"custom.{key}"] = value
    return flat


# -- 2. the holdout ------------------------------------------------------------------------------------


def split(rows: list[LeadRow], after: float | None, fraction: float | None) -> tuple[list[LeadRow], list[LeadRow]]:
    """(learning leads, holdout leads), as ``baton.metrics.split_holdout`` splits a backtest."""
    if after is not None:
        chosen = {r.lead_id for r in rows if r.first_seen > after}
    else:
        assert fraction is not None and 0 < fraction < 1
        newest = sorted(rows, key=attrgetter("first_seen"))
        chosen = {r.lead_id for r in newest[len(newest) - round(len(newest) * fraction):]}
    return [r for r in rows if r.lead_id not in chosen], [r for r in rows if r.lead_id in chosen]


# -- 3. candidate features -----------------------------------------------------------------------------

Kind = Literal["value", "other", "missing", "at_least", "count", "amount"]


@dataclass(frozen=True)
class Feature:
    """One candidate rule. ``field`` is an attribute (fit) or an event type (``count``, ``amount``)."""

    kind: Kind
    field: str
    values: tuple[Any, ...] = ()  # value: the value(s); other: the common values it excludes; amount: (property,)
    threshold: float = 0.0  # at_least: the edge; count: the cap; amount: the amount that earns the whole points

    @property
    def engagement(self) -> bool:
        return self.kind in ("count", "amount")

    @property
    def top(self) -> float:
        """The feature's largest value: its points times this is the rule's whole effect."""
        return self.threshold if self.kind == "count" else 1.0


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _numeric(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _nice(x: float) -> float:
    """Two significant digits: 587.3 -> 590, 0.1234 -> 0.12."""
    if x == 0:
        return 0.0
    digits = 1 - math.floor(math.log10(abs(x)))
    out = round(x, digits)
    return float(int(out)) if float(out).is_integer() else out


def _nice_amount(x: float, prop: str) -> float:
    """An edge people say: 587 seconds -> 600 (10 minutes); other amounts to two significant digits."""
    if prop in SECONDS and x >= 120:
        return _nice(x / 60) * 60
    return _nice(x)


def amount_keys(rows: Sequence[LeadRow], event_types: Sequence[str]) -> list[tuple[str, str]]:
    """The (event type, property) pairs whose numbers some lead adds up before its outcome."""
    scored = set(event_types)
    return sorted({key for r in rows for key in r.amounts if key[0] in scored})


def candidate_features(rows: list[LeadRow], fields: Sequence[str], event_types: Sequence[str],
                       min_support: int, amounts: Sequence[tuple[str, str]] = ()) -> list[Feature]:
    features: list[Feature] = []
    n = len(rows)
    for name in fields:
        present = [r.flat[name] for r in rows if _present(r.flat.get(name))]
        missing = n - len(present)
        if _numeric(present):
            numbers = sorted(float(v) for v in present)
            edges: list[float] = []
            for q in range(1, MAX_EDGES + 1):
                edge = _nice(numbers[min(len(numbers) - 1, len(numbers) * q // (MAX_EDGES + 1))])
                if edge > numbers[0] and edge not in edges:
                    edges.append(edge)
            features += [Feature("at_least", name, threshold=e) for e in edges]
        else:
            counts = Counter(_key(v) for v in present)
            spelled: dict[Any, Any] = {}
            for v in present:
                spelled.setdefault(_key(v), v)
            common = [k for k, c in counts.most_common(MAX_VALUES) if c >= min_support]
            features += [Feature("value", name, (spelled[k],)) for k in common]
            rest = len(present) - sum(counts[k] for k in common)
            if common and rest >= min_support:
                features.append(Feature("other", name, tuple(spelled[k] for k in common)))
            if not common and len(present) >= min_support:
                features.append(Feature("other", name))  # only rare values: "has a value"
        if missing >= min_support and len(present) >= min_support:
            features.append(Feature("missing", name))
    for typ in event_types:
        having = [r.counts[typ] for r in rows if r.counts[typ]]
        if len(having) < min_support:
            continue
        features += [Feature("count", typ, threshold=k) for k in COUNT_CAPS if k == 1 or max(having) > k]
    for typ, prop in amounts:
        totals = sorted(a for r in rows if (a := r.amounts.get((typ, prop), 0.0)) > 0)
        if len(totals) < min_support:
            continue
        ramps: list[float] = []
        for share in AMOUNT_QUANTILES:
            full = _nice_amount(totals[int(len(totals) * share)], prop)
            if full > 0 and full not in ramps:
                ramps.append(full)
        features += [Feature("amount", typ, (prop,), threshold=t) for t in ramps]
    return features


def column(feature: Feature, rows: Sequence[LeadRow]) -> list[float]:
    """The feature's value per lead, as the engine evaluates the rule it becomes."""
    name, kind = feature.field, feature.kind
    if kind == "amount":  # the amount rule's points in proportion up to the edge, as a share of them
        key, edge = (name, feature.values[0]), feature.threshold
        return [min(r.amounts.get(key, 0.0), edge) / edge for r in rows]
    if kind == "count":
        cap = feature.threshold
        return [min(float(r.counts[name]), cap) for r in rows]
    if kind == "missing":
        return [0.0 if _present(r.flat.get(name)) else 1.0 for r in rows]
    if kind == "at_least":
        out = []
        for r in rows:
            number = as_number(r.flat.get(name))
            out.append(1.0 if number is not None and number >= feature.threshold else 0.0)
        return out
    keys = {_key(v) for v in feature.values}
    if kind == "value":
        return [1.0 if _present(r.flat.get(name)) and _key(r.flat[name]) in keys else 0.0 for r in rows]
    return [1.0 if _present(r.flat.get(name)) and _key(r.flat[name]) not in keys else 0.0 for r in rows]


def matrix(features: Sequence[Feature], rows: Sequence[LeadRow]) -> NDArray[np.float64]:
    import numpy as np

    if not features:
        return np.zeros((len(rows), 0))
    return np.array([column(f, rows) for f in features], dtype=float).T


REFERENCE_WORDS = "reference levels (no points: the other rules on their field score against them)"


def reference_levels(features: Sequence[Feature], x: NDArray[np.float64]) -> set[int]:
    """The indicator to leave out of each field whose indicators (its common values, "another
    value", "not given") cover every lead exactly once. Together they equal the intercept, so the
    fit can move a constant between them and the intercept, and where it settled followed the
    column order: renaming a field changed the suggestion. The most common indicator is the
    reference, as in a scorecard: its leads get no points for the field, the others' points are
    relative to it."""
    import numpy as np

    by_field: dict[str, list[int]] = {}
    for i, feature in enumerate(features):
        if feature.kind in ("value", "other", "missing"):
            by_field.setdefault(feature.field, []).append(i)
    reference = set()
    for columns in by_field.values():
        chosen = x[:, columns]
        if len(columns) > 1 and bool((chosen.sum(axis=1) == 1).all()):
            reference.add(columns[int(np.argmax(chosen.sum(axis=0)))])
    return reference


# -- 4. leaks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    field: str
    check: str
    auc: float | None = None
    others_auc: float | None = None

    @property
    def message(self) -> str:
        if self.check == "left out by the analyst":
            return f"{self.field}: left out on request (--leave-out)"
        if self.check == "first seen after the outcome":
            return f"{self.field}: first known after the outcome for most leads that have it"
        if self.others_auc is None:
            return f"{self.field}: predicts the outcome almost perfectly by itself (AUC {self.auc:.3f})"
        return (f"{self.field}: predicts the outcome alone (AUC {self.auc:.3f}) at least as well as all the other "
                f"fields together ({self.others_auc:.3f}): probably filled in after contact")


def _oof_auc(x: NDArray[np.float64], y: NDArray[np.float64]) -> float | None:
    """Out-of-fold AUC of a lightly regularised logistic regression (3 folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if x.shape[1] == 0 or len(set(y.tolist())) < 2 or min(int(y.sum()), int(len(y) - y.sum())) < 3:
        return None
    model = LogisticRegression(C=1.0, max_iter=500, solver="liblinear", random_state=0)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    return float(roc_auc_score(y, scores))


def leaks(features: list[Feature], x: NDArray[np.float64], y: NDArray[np.float64], late: dict[str, int],
          before: Counter[str], fields: Sequence[str]) -> list[Leak]:
    """Fields to leave out: first known after the outcome for most leads that have them (as the
    backtest's check: at least 5 leads), then by predictive power, strongest first, each judged
    against the fields still in."""
    import numpy as np

    found = [Leak(name, "first seen after the outcome") for name in fields
             if late.get(name, 0) >= 5 and late[name] > before[name]]
    out = {leak.field for leak in found}
    by_field: dict[str, list[int]] = {}
    for i, f in enumerate(features):
        if not f.engagement:
            by_field.setdefault(f.field, []).append(i)
    alone = {name: _oof_auc(x[:, cols], y) for name, cols in by_field.items() if name not in out}
    for name, auc in sorted(alone.items(), key=lambda kv: -(kv[1] or 0.0)):
        if auc is None or auc < 0.6:
            continue
        if auc >= LEAK_AUC:
            found.append(Leak(name, "predicts the outcome alone", auc))
            out.add(name)
            continue
        others = [i for i, f in enumerate(features) if f.field != name and f.field not in out]
        others_auc = _oof_auc(x[:, np.array(others, dtype=int)], y) if others else None
        if others_auc is not None and auc >= others_auc:
            found.append(Leak(name, "predicts the outcome alone", auc, others_auc))
            out.add(name)
    return found


# -- 5. the scorecard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    feature: Feature
    points: int
    support: int  # learning leads the rule applies to
    won: int  # of them, won


Distinct = tuple["NDArray[np.float64]", "NDArray[np.float64]", "NDArray[np.float64]"]  # rows, outcomes, weights


def distinct_rows(x: NDArray[np.float64], y: NDArray[np.float64]) -> Distinct:
    """The distinct (features, outcome) rows and how often each occurs: a logistic regression on them,
    weighted, has the same objective as on every row (binned features repeat: 50,000 leads are about
    20,000 distinct rows), and fits in about half the time."""
    import numpy as np

    both = np.ascontiguousarray(np.column_stack([x, y]))
    keys = both.view(np.dtype((np.void, both.dtype.itemsize * both.shape[1]))).ravel()  # a row as one value
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    rows = both[first]
    return rows[:, :-1], rows[:, -1], counts.astype(float)


def _l1(c: float, data: Distinct, tol: float = 1e-4) -> Any:
    """An L1 logistic regression at strength ``c`` on distinct weighted rows."""
    from sklearn.linear_model import LogisticRegression

    x, y, weights = data
    model = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", random_state=0, max_iter=1000, tol=tol)
    return model.fit(x, y, sample_weight=weights)


def _l1_path(x: NDArray[np.float64], y: NDArray[np.float64], max_rules: int) -> tuple[Any, float]:
    """The L1 model and its strength C: chosen on the newest quarter of the (time-ordered) rows,
    the sparsest within 0.002 AUC of the best with at most ``max_rules`` rules; then fit on all."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    cut = int(len(y) * 0.75)
    candidates: list[tuple[float, int, float]] = []  # (auc, rules, C)
    learn = distinct_rows(x[:cut], y[:cut])
    for c in np.logspace(-3, 1, 9):
        model = _l1(float(c), learn, PATH_TOL)
        rules = int(np.count_nonzero(model.coef_[0]))
        if rules == 0 or rules > max_rules or len(set(y[cut:].tolist())) < 2:
            continue
        candidates.append((float(roc_auc_score(y[cut:], model.decision_function(x[cut:]))), rules, float(c)))
    if not candidates:
        chosen = 1e-3
    else:
        best = max(a for a, _, _ in candidates)
        chosen = min((r, c) for a, r, c in candidates if a >= best - 0.002)[1]
    everyone = distinct_rows(x, y)
    model = _l1(chosen, everyone)
    while np.count_nonzero(model.coef_[0]) > max_rules and chosen > 1e-4:  # the full fit may keep more
        chosen /= 1.5
        model = _l1(chosen, everyone)
    return model, chosen


def fit_scorecard(features: list[Feature], x: NDArray[np.float64], y: NDArray[np.float64],
                  max_rules: int) -> tuple[list[Scored], float, dict[str, int]]:
    """(rules with their points, the L1 strength C, the event signals left out as negative).

    A lead's score is the highest fit + engagement it reaches (what moves it to MQL or SQL, and
    what the backtest ranks by): points an event takes away come after that peak and never lower
    it. So an event feature that learns negative points is taken out and the model fit again
    without it; what it would have weighed is returned for the report."""
    import numpy as np

    scale = POINTS_TO_DOUBLE / math.log(2)
    active = list(range(len(features)))
    negative: dict[str, int] = {}
    model, chosen = _l1_path(x, y, max_rules)
    while True:
        coefs = dict(zip(active, model.coef_[0], strict=True))
        dropped = [i for i in active if features[i].engagement and round(float(coefs[i]) * scale) < 0]
        if not dropped:
            break
        for i in dropped:
            f = features[i]
            negative[engagement_label(f)] = round(float(coefs[i]) * scale)
        active = [i for i in active if i not in dropped]
        if not active:
            return [], chosen, negative
        model = _l1(chosen, distinct_rows(x[:, np.array(active, dtype=int)], y))  # (the same strength)
    out = []
    for i in active:
        points = round(float(coefs[i]) * scale)
        if points == 0 or abs(points) * features[i].top < MIN_EFFECT:
            continue
        hit = x[:, i] >= 1 if features[i].kind == "amount" else x[:, i] > 0  # (an amount: its whole points)
        out.append(Scored(features[i], points, int(hit.sum()), int(y[hit].sum())))
    return out, chosen, negative


# -- 6. the rule set -----------------------------------------------------------------------------------

EVENT_WORDS = {  # (one, several)
    "page_view": ("page view", "page views"), "email_open": ("email open", "email opens"),
    "email_click": ("email click", "email clicks"), "form_submitted": ("form submitted", "forms submitted"),
    "content_download": ("download", "downloads"), "webinar_registered": ("webinar sign-up", "webinar sign-ups"),
    "webinar_attended": ("webinar attended", "webinars attended"), "trial_signup": ("trial sign-up", "trial sign-ups"),
    "demo_request": ("demo request", "demo requests"), "contact_sales": ("contact-sales request", "contact-sales requests"),
    "meeting_booked": ("meeting booked", "meetings booked"), "meeting_canceled": ("meeting canceled", "meetings canceled"),
    "unsubscribe": ("unsubscribe", "unsubscribes"), "spam_report": ("spam report", "spam reports"),
    "email_bounce": ("email bounce", "email bounces"),
}


def field_words(name: str) -> str:
    words = name.removeprefix("custom.").replace("_", " ")
    return words[:1].upper() + words[1:]


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _join(values: Sequence[Any], limit: int = 70) -> str:
    text = ", ".join(_value_words(v) for v in values[:-1])
    text = f"{text} or {_value_words(values[-1])}" if text else _value_words(values[-1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(x: float) -> Any:
    return int(x) if float(x).is_integer() else x


def rule_of(feature: Feature, values: tuple[Any, ...] | None = None, unit: str | None = None) -> tuple[str, dict[str, Any]]:
    """(label in words, condition) of a fit feature; ``values`` merges several ``value`` features;
    ``unit`` is what one of a number field is (declared, or Baton's own: company_size's employees)."""
    name, words = feature.field, field_words(feature.field)
    if feature.kind == "missing":
        return f"{words} not given", {"not": {"field": name, "op": "exists"}}
    if feature.kind == "at_least":
        edge = _number(feature.threshold)
        amount = amount_words(edge, unit) if unit else f"{edge:,}"
        return f"{words} {amount} or more", {"field": name, "op": "gte", "value": edge}
    if feature.kind == "other":
        if not feature.values:
            return f"{words} given", {"field": name, "op": "exists"}
        return (f"{words} is another value (not {_join(feature.values, 50)})",
                {"all": [{"field": name, "op": "exists"}, {"field": name, "op": "not_in", "value": list(feature.values)}]})
    chosen = values or feature.values
    if len(chosen) == 1:
        return f"{words} is {_value_words(chosen[0])}", {"field": name, "op": "eq", "value": chosen[0]}
    return f"{words} is {_join(chosen)}", {"field": name, "op": "in", "value": list(chosen)}


AMOUNT_WORDS = {("site_visit_time", "seconds"): "on site"}  # what an amount of an event type is, in words


def amount_words(amount: float, prop: str) -> str:
    """``600, "seconds"`` -> "10 minutes"; ``2500000, "value"`` -> "2,500,000 value"."""
    if prop in SECONDS:
        if amount >= 7200 and amount % 3600 == 0:
            return f"{_number(amount / 3600):,} hours"
        if amount >= 120 and amount % 60 == 0:
            return f"{_number(amount / 60):,} minutes"
        return f"{_number(amount):,} seconds"
    return f"{_number(amount):,} {prop.replace('_', ' ')}"


def engagement_label(feature: Feature) -> str:
    plain = feature.field.replace("_", " ")
    if feature.kind == "amount":
        prop = feature.values[0]
        where = AMOUNT_WORDS.get((feature.field, prop), f"of {plain}")
        return f"Each of the first {amount_words(feature.threshold, prop)} {where}"
    # A type a rule set declares (sms_sent, chat_message) is named as the analyst wrote it.
    one, several = EVENT_WORDS.get(feature.field, (f"{feature.field} event", f"{feature.field} events"))
    k = int(feature.threshold)
    return f"At least one {one}" if k == 1 else f"Each of the first {k} {several}"


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:56] or "rule"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


@dataclass
class Rule:
    section: Literal["fit", "engagement"]
    id: str
    label: str
    points: int
    support: int
    won: int
    when: dict[str, Any] | None = None
    events: list[str] | None = None
    cap: int | None = None  # engagement: the events that score (max_count); an amount rule: None
    # An amount rule: (property, per): ``points`` per ``per`` of the events' property, at most
    # ``points`` in all (caps.max_points): the whole points once the lead's total reaches ``per``.
    amount: tuple[str, float] | None = None
    max_points: float | None = None  # an amount rule's cap on its points (None: no cap)

    def comment(self, leads: int) -> str:
        rate = self.won / self.support if self.support else 0.0
        whole = "reach the whole points: " if self.amount is not None else ""
        return (f"{whole}{self.support:,} of {leads:,} learning leads ({self.support / max(leads, 1):.1%}), "
                f"{rate:.1%} won")


def rules_of(scored: list[Scored], units: dict[str, str] | None = None) -> list[Rule]:
    """Fit rules (values of one field with the same points merged into one ``in`` rule) and
    engagement rules, strongest first; ``units``: field -> what one of it is, for the labels."""
    taken: set[str] = set()
    out: list[Rule] = []
    merged: dict[tuple[str, int], list[Scored]] = {}
    for s in scored:
        if s.feature.kind == "value":
            merged.setdefault((s.feature.field, s.points), []).append(s)
    done: set[Feature] = set()
    for s in sorted(scored, key=lambda s: -abs(s.points) * s.feature.top):
        if s.feature in done:
            continue
        if s.feature.kind == "amount":
            label = engagement_label(s.feature)
            out.append(Rule("engagement", _slug(label, taken), label, s.points, s.support, s.won,
                            events=[s.feature.field], amount=(s.feature.values[0], s.feature.threshold),
                            max_points=float(abs(s.points))))
            continue
        if s.feature.engagement:
            label = engagement_label(s.feature)
            out.append(Rule("engagement", _slug(label, taken), label, s.points, s.support, s.won,
                            events=[s.feature.field], cap=int(s.feature.threshold)))
            continue
        group = merged.get((s.feature.field, s.points), [s]) if s.feature.kind == "value" else [s]
        done.update(g.feature for g in group)
        values = tuple(v for g in group for v in g.feature.values)
        label, when = rule_of(s.feature, values, (units or {}).get(s.feature.field))
        out.append(Rule("fit", _slug(label, taken), label[:120], s.points, sum(g.support for g in group),
                        sum(g.won for g in group), when=when))
    return out


def threshold_for(scores: Sequence[float], share: float) -> int:
    """The lowest whole score that at most ``share`` of the leads reach (at least one point above the lowest)."""
    ordered = sorted(scores, reverse=True)
    if not ordered:
        return 1
    k = max(1, min(len(ordered), int(len(ordered) * share)))
    t = math.floor(ordered[k - 1])
    while t <= ordered[0] and sum(1 for s in ordered if s >= t) > len(ordered) * share:
        t += 1
    return max(t, math.floor(ordered[-1]) + 1)


def score_condition(threshold: int, fits: Sequence[float], engagement_max: float, engagement_min: float,
                    steps: int = 8) -> dict[str, Any]:
    """``fit + engagement >= threshold`` as the rule format can say it: any of (fit >= v and
    engagement >= threshold - v) over a ladder of fit levels v. Exact at the levels, and never
    true below the threshold; between levels a lead needs at most one step more engagement."""
    if engagement_max <= 0 and engagement_min >= 0:
        return {"field": "fit", "op": "gte", "value": threshold}
    lo, hi = threshold - math.ceil(engagement_max), threshold - math.floor(engagement_min)
    levels = sorted({int(f) for f in fits if lo <= f <= hi})
    if len(levels) > steps:
        levels = sorted({levels[round(i * (len(levels) - 1) / (steps - 1))] for i in range(steps)})
    levels = sorted(set(levels) | {lo, hi})
    clauses: list[dict[str, Any]] = []
    for v in levels:
        need = threshold - v
        clauses.append({"all": [{"field": "fit", "op": "gte", "value": v},
                                {"field": "engagement", "op": "gte", "value": need}]})
    return {"any": clauses}


def _flow(value: Any) -> str:
    if not isinstance(value, (dict, list)):  # (a plain scalar would be dumped as a document, "..." and all)
        return json.dumps(value, ensure_ascii=False)
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True, sort_keys=False).strip()


@dataclass
class Thresholds:
    sql: int
    mql: int
    grades: list[tuple[str, int | None]]
    share: float  # the SQL share aimed at


def fit_and_engagement(rules: list[Rule], rows: Sequence[LeadRow], half_life_days: float | None = None
                       ) -> tuple[list[float], list[float], list[float]]:
    """Each lead's fit, engagement (undecayed: its bounds) and peak fit + engagement before its first
    outcome under ``rules``, engagement decayed with ``half_life_days`` as the engine decays it. The
    peak is what moves a lead: the engine checks the stages after every event, so a lead whose fit
    arrives before a negative engagement rule fires is an SQL at that moment."""
    rate = LN2 / (half_life_days * 86400.0) if half_life_days else 0.0
    fit_rules = [(r, _FitTest(r.when)) for r in rules if r.section == "fit" and r.when is not None]
    by_type: dict[str, list[Rule]] = {}
    for r in rules:
        if r.section == "engagement":
            for typ in r.events or ():
                by_type.setdefault(typ, []).append(r)
    fits: list[float] = []
    engagement: list[float] = []
    peaks: list[float] = []
    for row in rows:
        state = new_lead(row.lead_id)
        fit = eng = decayed = 0.0
        peak = -math.inf
        last = row.events[0].ts if row.events else 0.0
        hits: Counter[str] = Counter()
        given: dict[str, float] = {}  # amount rules: points awarded so far
        for event in row.events:
            if event.traits:
                merge_traits(state, event.traits)
                fit = float(sum(r.points for r, test in fit_rules if test(state.attributes)))
            if rate and decayed:
                decayed *= math.exp(-(event.ts - last) * rate)
            last = event.ts
            for r in by_type.get(event.type, ()):
                if r.amount is not None:
                    award = _amount_award(r, event, given)
                elif r.cap is None or hits[r.id] < r.cap:
                    hits[r.id] += 1
                    award = r.points
                else:
                    continue
                eng += award
                decayed += award
            peak = max(peak, fit + decayed)
        fits.append(fit)
        engagement.append(eng)
        peaks.append(peak if peak > -math.inf else 0.0)
    return fits, engagement, peaks


def _amount_award(rule: Rule, event: Event, given: dict[str, float]) -> float:
    """An amount rule's points for ``event`` as the engine awards them: in proportion to the amount,
    trimmed to what the rule's cap leaves (lifetime caps, no windows: the suggester writes none)."""
    assert rule.amount is not None
    prop, per = rule.amount
    amount = amount_of(event.properties, tuple(prop.split("."))) if event.properties else None
    if not amount:
        return 0.0
    magnitude = abs(rule.points) * amount / per
    if rule.max_points is not None:
        magnitude = min(magnitude, max(rule.max_points - given.get(rule.id, 0.0), 0.0))
        given[rule.id] = given.get(rule.id, 0.0) + magnitude
    return magnitude if rule.points > 0 else -magnitude


def weekly_share(rows: Sequence[LeadRow], capacity: float | None) -> float:
    """The share of leads sales can take: ``capacity`` over the leads arriving a week (as
    ``baton.metrics.intake_weeks`` counts the intake span); 10 % without a capacity."""
    if capacity is None or not rows:
        return DEFAULT_SHARE
    seen = [r.first_seen for r in rows]
    span = (max(seen) - min(seen)) * len(seen) / max(len(seen) - 1, 1)
    return min(capacity / (len(rows) / (max(span, 86400.0) / WEEK)), 1.0)


def thresholds(totals: Sequence[float], fits: Sequence[float], share: float) -> Thresholds:
    """SQL at the score the top ``share`` of the leads reach; MQL at three times that share (at
    most half); grades A-C at the 80th, 50th and 20th percentile of fit."""
    sql = threshold_for(totals, share)
    mql = min(threshold_for(totals, min(3 * share, 0.5)), sql)
    ordered = sorted(fits)
    cuts: list[int] = []
    for q in (0.8, 0.5, 0.2):
        v = math.ceil(ordered[min(len(ordered) - 1, int(len(ordered) * q))]) if ordered else 0
        if v > (ordered[0] if ordered else 0) and v not in cuts and (not cuts or v < cuts[-1]):
            cuts.append(v)
    grades: list[tuple[str, int | None]] = [("ABC"[i], v) for i, v in enumerate(cuts)]
    grades.append(("ABCD"[len(cuts)], None))
    return Thresholds(sql, mql, grades, share)


class _FitTest:
    """A fit rule's condition as the engine compiles it, tested on a lead's attributes."""

    def __init__(self, when: dict[str, Any] | None) -> None:
        from chalicelib.rules.conditions import compile_condition
        from chalicelib.rules.model import FitRule

        rule = FitRule(id="probe", label="probe", when=when, points=0)
        self._test = compile_condition(rule.when, {})

    def __call__(self, attrs: dict[str, Any]) -> bool:
        return bool(self._test(Context(attrs)))


def _stage(name: str, when: dict[str, Any]) -> list[str]:
    """A stage condition in block style, one fit level a line."""
    if "any" not in when:
        return [f"  {name}:", f"    when: {_flow(when)}"]
    return [f"  {name}:", "    when:", "      any:"] + [f"        - {_flow(clause)}" for clause in when["any"]]


def render_yaml(rules: list[Rule], limits: Thresholds, fits: list[float], engagement: list[float], *, name: str,
                description: str, leads: int, base: RuleSet | None, left_out: list[Leak], unusable: list[str],
                references: Sequence[str] = (), vocabulary: Vocabulary | None = None) -> str:
    """The suggested rule set as YAML, each rule with a comment on its support and conversion."""
    emax = max(engagement, default=0.0)
    emin = min(engagement, default=0.0)
    lines = [
        "# yaml-language-server: $schema=../ruleset.schema.json",
        "# Suggested by `baton rules suggest` from outcomes: points on a scale where "
        f"{POINTS_TO_DOUBLE} points double the odds of winning.",
        "# Check it like any rule set (baton rules validate, baton backtest, notebook 03) before publishing.",
    ]
    lines += [f"# left out: {leak.message}" for leak in left_out]
    if unusable:
        lines.append(f"# event types in the history that rule sets cannot score yet: {', '.join(unusable)}")
    if references:
        lines.append(f"# {REFERENCE_WORDS}: {', '.join(references)}")
    lines += [f"name: {_flow(name)}", f"description: {_flow(description)}", ""]
    lines += declarations(rules, vocabulary)
    half_life = base.decay.half_life_days if base is not None else HALF_LIFE_DAYS
    lines += ["decay:", f"  half_life_days: {_flow(half_life)}", "", "grades:"]
    lines += [f"  - {{grade: {g}, min_fit: {v}}}" if v is not None else f"  - {{grade: {g}}}" for g, v in limits.grades]
    for section in ("fit", "engagement"):
        chosen = [r for r in rules if r.section == section]
        lines += ["", f"{section}:" if chosen else f"{section}: []"]
        for r in chosen:
            lines += [f"  # {r.comment(leads)}", f"  - id: {r.id}", f"    label: {_flow(r.label)}"]
            if section == "fit":
                lines.append(f"    when: {_flow(r.when)}")
            else:
                lines.append(f"    events: {_flow(r.events)}")
            lines.append(f"    points: {r.points}")
            if r.amount is not None:
                lines.append(f"    amount: {_flow({'property': r.amount[0], 'per': _number(r.amount[1])})}")
                if r.max_points is not None:
                    lines.append(f"    caps: {{max_points: {_number(r.max_points)}}}")
            elif section == "engagement" and r.cap is not None:
                lines.append(f"    caps: {{max_count: {r.cap}}}")
    if base is not None and base.disqualifiers:
        dq = [d.model_dump(mode="json", by_alias=True, exclude_defaults=True) for d in base.disqualifiers]
        lines += ["", "disqualifiers:"] + [f"  - {_flow(d)}" for d in dq]
    lines += [
        "", "stages:",
        f"  # MQL: fit + engagement >= {limits.mql}; SQL: fit + engagement >= {limits.sql} "
        f"(about {limits.share:.1%} of leads, the weekly capacity)",
        *_stage("mql", score_condition(limits.mql, fits, emax, emin)),
        *_stage("sql", score_condition(limits.sql, fits, emax, emin)),
        "  sql_requires_mql: false",
    ]
    if base is not None:
        handoff = base.handoff.model_dump(mode="json", exclude_defaults=True)
        if handoff:
            lines += ["", f"handoff: {_flow(handoff)}"]
        if base.forms:
            lines += ["", f"forms: {_flow({k: v.model_dump(mode='json', exclude_defaults=True) for k, v in base.forms.items()})}"]
        if base.lists:
            lines += ["", f"lists: {_flow(base.lists)}"]
    return "\n".join(lines) + "\n"


def declarations(rules: list[Rule], vocabulary: Vocabulary | None = None) -> list[str]:
    """The ``event_types:`` and ``attributes:`` the rules read that Baton does not know: a new
    version must declare every custom attribute its conditions read, and every event type it scores.
    Each is declared as the history's vocabulary has it (the analyst's descriptions, enum values
    and units) where the rules' conditions fit it; otherwise from the values they compare."""
    known = vocabulary or Vocabulary()
    types = sorted({t for r in rules for t in (r.events or ()) if t not in KNOWN_TYPES})
    reads: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        for leaf in _leaves(r.when):
            if leaf.get("field", "").startswith("custom."):
                reads.setdefault(leaf["field"], []).append(leaf)
    lines: list[str] = []
    if types:
        lines.append("event_types:")
        for t in types:
            declared = known.event_types.get(t)
            description = declared.description if declared is not None else f"{t} (seen in the history)"
            lines.append(f"  {t}: {{description: {_flow(description)}}}")
    if reads:
        lines += ["attributes:"] + [f"  {n}: {_flow(_declaration(n, reads[n], known.attributes.get(n)))}"
                                    for n in sorted(reads)]
    return [*lines, ""] if lines else []


def _declaration(name: str, reads: list[dict[str, Any]], declared: AttributeDeclaration | None) -> dict[str, Any]:
    """The analyst's declaration of an attribute when every condition reading it could hold under
    it (``type_mismatch``, as validation checks; a history imported under it always can), else the
    type the compared values show."""
    if declared is not None and not any(type_mismatch(name, declared.type, declared.values or [], leaf["op"],
                                                      leaf.get("value")) for leaf in reads):
        return declared.model_dump(mode="json", exclude_defaults=True)
    values = [v for leaf in reads for v in (leaf["value"] if isinstance(leaf.get("value"), list) else [leaf.get("value")])]
    if any(isinstance(v, bool) for v in values):
        return {"type": "boolean"}
    return {"type": "number" if any(isinstance(v, (int, float)) for v in values) else "text"}


def _leaves(when: Any) -> Iterator[dict[str, Any]]:
    if isinstance(when, dict):
        if "field" in when:
            yield when
        for part in (*when.get("all", ()), *when.get("any", ()), *([when["not"]] if "not" in when else [])):
            yield from _leaves(part)


# -- --from: the current rule set's structure, new points ---------------------------------------------


def from_features(base: RuleSet, rows: Sequence[LeadRow]) -> tuple[list[str], NDArray[np.float64]]:
    """One column per current fit or engagement rule: fit 0/1, engagement the capped count of
    matching events before the outcome (windows and decay aside)."""
    import numpy as np

    compiled = compile_ruleset(base)
    ids: list[str] = []
    columns: list[list[float]] = []
    for rule in compiled.fit:
        ids.append(rule.id)
        columns.append([1.0 if rule.test(Context(r.attrs)) else 0.0 for r in rows])
    for source in base.engagement:
        er = compiled.engagement_by_id[source.id]
        cap = er.cap_count or math.inf
        col = []
        for r in rows:
            matching = [e for e in r.events if e.type in source.events
                        and (er.test is None or er.test(Context(r.attrs, event=e)))]
            if er.amount is None:
                col.append(float(min(len(matching), cap)))
                continue
            # An amount rule: its amount in units of ``per``, up to what its points cap lets count.
            path = er.amount
            scoring = [a for e in matching if (a := amount_of(e.properties, path))]  # (only these count)
            units = sum(scoring[: int(cap) if cap < math.inf else None]) / er.amount_per
            col.append(min(units, er.cap_points / abs(er.points)) if er.cap_points is not None else units)
        ids.append(source.id)
        columns.append(col)
    return ids, (np.array(columns, dtype=float).T if columns else np.zeros((len(rows), 0)))


def refit_points(base: RuleSet, rows: list[LeadRow], y: NDArray[np.float64]) -> dict[str, int]:
    """New points for the current rules (a lightly regularised logistic regression on them)."""
    from sklearn.linear_model import LogisticRegression

    ids, x = from_features(base, rows)
    if not ids:
        return {}
    model = LogisticRegression(C=1.0, max_iter=1000, solver="liblinear", random_state=0).fit(x, y)
    scale = POINTS_TO_DOUBLE / math.log(2)
    return {rule_id: round(float(c) * scale) for rule_id, c in zip(ids, model.coef_[0], strict=True)}


def rules_from(base: RuleSet, points: dict[str, int], rows: list[LeadRow], y: NDArray[np.float64]) -> list[Rule]:
    """The current rules with their new points (engagement rules at 0 dropped: the format refuses 0)."""
    ids, x = from_features(base, rows)
    column_of = {rule_id: x[:, i] for i, rule_id in enumerate(ids)}
    out: list[Rule] = []
    for fr in base.fit:
        hit = column_of[fr.id] > 0
        out.append(Rule("fit", fr.id, fr.label, points[fr.id], int(hit.sum()), int(y[hit].sum()),
                        when=fr.model_dump(mode="json", by_alias=True)["when"]))
    compiled = compile_ruleset(base)
    for er in base.engagement:
        if points[er.id] == 0:
            continue
        hit = column_of[er.id] > 0
        rule = compiled.engagement_by_id[er.id]
        cap = rule.cap_count  # (a max_points cap as the events it lets count)
        amount = max_points = None
        if er.amount is not None:  # the same amount let count: max_points in the new points
            amount = (er.amount.property, er.amount.per)
            if rule.cap_points is not None:
                max_points = float(max(1, round(abs(points[er.id]) * rule.cap_points / abs(er.points))))
        out.append(Rule("engagement", er.id, er.label, points[er.id], int(hit.sum()), int(y[hit].sum()),
                        events=list(er.events), cap=cap, amount=amount, max_points=max_points))
    return out


def render_from(base: RuleSet, rules: list[Rule], limits: Thresholds, fits: list[float],
                engagement: list[float]) -> str:
    """The current rule set with new points, grade bands and stage conditions; all else kept."""
    data = base.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    new = {r.id: r.points for r in rules}
    data["fit"] = [{**rule, "points": new[rule["id"]]} for rule in data.get("fit", [])]
    data["engagement"] = [{**rule, "points": new[rule["id"]]} for rule in data.get("engagement", [])
                          if rule["id"] in new]
    by_id = {r.id: r for r in rules}
    for rule in data["engagement"]:  # a max_points cap keeps letting the same events, or amount, count
        caps = rule.get("caps") or {}
        if caps.get("max_points") is None:
            continue
        new_rule = by_id[rule["id"]]
        if new_rule.max_points is not None:
            caps["max_points"] = int(new_rule.max_points)
        elif new_rule.cap is not None:
            caps["max_points"] = abs(rule["points"]) * int(new_rule.cap or 1)
    data["grades"] = [{"grade": g, "min_fit": v} if v is not None else {"grade": g} for g, v in limits.grades]
    emax, emin = max(engagement, default=0.0), min(engagement, default=0.0)
    stages = data.setdefault("stages", {})
    stages["mql"] = {"when": score_condition(limits.mql, fits, emax, emin)}
    stages["sql"] = {"when": score_condition(limits.sql, fits, emax, emin)}
    stages["sql_requires_mql"] = False
    header = (f"# {base.name} with points suggested by `baton rules suggest --from` ({POINTS_TO_DOUBLE} points "
              "double the odds of winning); the structure is the current one.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


# -- 7. baselines --------------------------------------------------------------------------------------


def raw_frame(rows: Sequence[LeadRow], fields: Sequence[str], event_types: Sequence[str],
              amounts: Sequence[tuple[str, str]] = ()) -> Any:
    """The raw columns the baselines read: each attribute as it is, each event type's count, each
    amount's total."""
    import pandas as pd

    data: dict[str, list[Any]] = {}
    for name in fields:
        data[name] = [r.flat.get(name) for r in rows]
    for typ in event_types:
        data[f"events.{typ}"] = [r.counts[typ] for r in rows]
    for typ, prop in amounts:
        data[f"events.{typ}.{prop}"] = [r.amounts.get((typ, prop), 0.0) for r in rows]
    return pd.DataFrame(data)


@dataclass
class Baselines:
    """The two baselines on the holdout leads with an outcome (``won``, in the order of ``lead_ids``)."""

    logistic_auc: float | None = None
    boosting_auc: float | None = None
    logistic_seconds: float = 0.0
    lead_ids: list[str] = field(default_factory=list)
    won: list[bool] = field(default_factory=list)
    logistic_scores: list[float] = field(default_factory=list)
    boosting_scores: list[float] = field(default_factory=list)


def baselines(train: Sequence[LeadRow], held: Sequence[LeadRow], fields: Sequence[str],
              event_types: Sequence[str], amounts: Sequence[tuple[str, str]] = ()) -> Baselines:
    """A logistic regression and gradient boosting on the learning leads' raw columns (categories
    one-hot, numbers standardized with missing values imputed and flagged), scored on the holdout."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    a, b = raw_frame(train, fields, event_types, amounts), raw_frame(held, fields, event_types, amounts)
    ya = np.array([bool(r.won) for r in train])
    yb = np.array([bool(r.won) for r in held])
    if len(set(ya.tolist())) < 2 or len(set(yb.tolist())) < 2:
        return Baselines()
    numeric = [c for c in a.columns if c.startswith("events.") or _numeric([v for v in a[c] if _present(v)])]
    categorical = [c for c in a.columns if c not in numeric]
    for frame in (a, b):
        for c in categorical:
            frame[c] = frame[c].map(lambda v: "(missing)" if not _present(v) else str(_key(v)))
        for c in numeric:
            frame[c] = pd_numeric(frame[c])
    prep = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
    ], sparse_threshold=0.0)
    started = time.perf_counter()
    logistic = make_pipeline(prep, LogisticRegression(max_iter=2000)).fit(a, ya)
    logistic_scores = logistic.decision_function(b)
    logistic_seconds = time.perf_counter() - started
    boosting = make_pipeline(prep, HistGradientBoostingClassifier(random_state=0)).fit(a, ya)
    boosting_scores = boosting.predict_proba(b)[:, 1]
    return Baselines(float(roc_auc_score(yb, logistic_scores)), float(roc_auc_score(yb, boosting_scores)),
                     logistic_seconds, [r.lead_id for r in held], yb.tolist(), logistic_scores.tolist(),
                     boosting_scores.tolist())


def pd_numeric(series: Any) -> Any:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype(float)


# -- the whole suggestion ------------------------------------------------------------------------------


@dataclass
class Suggestion:
    yaml: str
    ruleset: RuleSet
    rules: list[Rule]
    train_leads: int
    holdout_leads: int
    left_out: list[Leak]
    unusable: list[str]
    report: Report  # the written file's backtest
    current: Report | None
    baseline: Baselines
    limits: Thresholds
    c: float | None
    negative: dict[str, int]  # event signals that learned negative points (label -> points), not written
    seconds: float = 0.0
    diff: str | None = None
    references: list[str] = field(default_factory=list)  # the reference levels' labels (``reference_levels``)

    def headline(self) -> dict[str, Any]:
        held = self.report.holdout or self.report.metrics
        quality = held["quality"]
        cut = quality.get("at_capacity") or {}
        current = None
        if self.current is not None:
            current = (self.current.holdout or self.current.metrics)["quality"]["auc"]
        return {
            "train_leads": self.train_leads, "holdout_leads": self.holdout_leads,
            "rules": len(self.rules), "fit_rules": sum(r.section == "fit" for r in self.rules),
            "engagement_rules": sum(r.section == "engagement" for r in self.rules),
            "holdout_auc": _round(quality["auc"]), "holdout_pr_auc": _round(quality["pr_auc"]),
            "current_holdout_auc": _round(current),
            "logistic_holdout_auc": _round(self.baseline.logistic_auc),
            "boosting_holdout_auc": _round(self.baseline.boosting_auc),
            "precision_at_capacity": _round(cut.get("precision")), "recall_at_capacity": _round(cut.get("recall")),
            "sql_share": _round(held["sql_share"]), "sql_precision": _round(held["sql_quality"]["precision"]),
            "sql_threshold": self.limits.sql, "mql_threshold": self.limits.mql,
            "points_to_double": POINTS_TO_DOUBLE, "seconds": round(self.seconds, 3),
            "logistic_seconds": round(self.baseline.logistic_seconds, 3),
            "left_out": [leak.field for leak in self.left_out], "not_scorable": self.unusable,
            "negative_events_left_out": self.negative, "reference_levels": self.references,
        }


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


@contextmanager
def _one_thread() -> Iterator[None]:
    """scikit-learn on one thread. Its OpenMP loops (gradient boosting) spin-wait for their other
    threads: on a busy two-core machine one fit took 50 s instead of 3. The modules are imported
    first, so that the limit reaches the OpenMP runtime they load."""
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def suggest(
    events: list[Event], outcomes: list[Outcome], *, holdout_after: float | None = None,
    holdout_after_text: str | None = None, holdout_fraction: float | None = None, capacity: float | None = None,
    base: RuleSet | None = None, max_rules: int = 30, leave_out: Sequence[str] = (), name: str = "suggested",
    history: str = "", workers: int = 2, vocabulary: Vocabulary | None = None,
) -> Suggestion:
    """Learn a rule set from ``events`` and ``outcomes``, write it, and measure it on the holdout.
    ``vocabulary``: the history's declarations (``read_vocabulary``), copied into the rule set written."""
    with _one_thread():
        return _suggest(events, outcomes, holdout_after, holdout_after_text, holdout_fraction, capacity, base,
                        max_rules, leave_out, name, history, workers, vocabulary or Vocabulary())


def _suggest(
    events: list[Event], outcomes: list[Outcome], holdout_after: float | None, holdout_after_text: str | None,
    holdout_fraction: float | None, capacity: float | None, base: RuleSet | None, max_rules: int,
    leave_out: Sequence[str], name: str, history: str, workers: int, vocabulary: Vocabulary,
) -> Suggestion:
    import numpy as np

    started = time.perf_counter()
    if holdout_after is None and holdout_fraction is None:
        holdout_fraction = 0.3

    def backtested(ruleset: RuleSet, label: str) -> Report:  # as `baton backtest` measures a file
        return measure(ordered, outcomes, ruleset, history=history, ruleset_label=label, capacity=capacity,
                       holdout_after=holdout_after_text if holdout_after is not None else None,
                       holdout_fraction=holdout_fraction if holdout_after is None else None, workers=workers,
                       routed=routed)  # (the timelines learned from: routed once)

    ordered = in_time_order(events)
    routed = route(ordered, sorted(outcomes, key=attrgetter("ts")))
    rows, late = lead_rows(ordered, outcomes, routed)
    train_all, held_all = split(rows, holdout_after, holdout_fraction)
    train = sorted((r for r in train_all if r.won is not None), key=attrgetter("first_seen"))
    held = [r for r in held_all if r.won is not None]
    if len(train) < 20 or len({r.won for r in train}) < 2:
        raise ValueError(f"{len(train)} learning leads with an outcome ({sum(bool(r.won) for r in train)} won): "
                         "too few to learn from")
    y = np.array([1.0 if r.won else 0.0 for r in train])
    present = Counter(name for r in train for name, v in r.flat.items() if _present(v))
    min_support = max(20, len(train) // 100)
    fields = sorted(n for n, c in present.items() if c >= min_support and n not in ALWAYS_OUT)
    fields += sorted(n for n, c in late.items() if c >= 5 and n not in fields)  # (for the timing check)
    seen_types = Counter(t for r in train for t in r.counts)
    # Types a team logs beyond the built-in ones are scored too: the rule set declares them.
    event_types = sorted(t for t in seen_types if t not in NOT_SCORED_EVENTS
                         and (t in KNOWN_TYPES or EVENT_TYPE.fullmatch(t)))
    unusable = sorted(t for t in seen_types if t not in event_types and t not in NOT_SCORED_EVENTS)
    told = [Leak(f, "left out by the analyst") for f in leave_out if f in fields]
    fields = [f for f in fields if f not in leave_out]
    amounts = amount_keys(train, event_types)
    features = candidate_features(train, fields, event_types, min_support, amounts)
    x = matrix(features, train)
    known_before = Counter(n for r in rows for n, v in r.flat.items() if _present(v))
    left_out = told + leaks(features, x, y, late, known_before, fields)
    out = {leak.field for leak in left_out}
    keep = [i for i, f in enumerate(features) if f.field not in out]
    features = [features[i] for i in keep]
    x = x[:, keep]
    fields = [f for f in fields if f not in out]
    chosen_c: float | None = None
    negative: dict[str, int] = {}
    references: list[str] = []
    if base is None:
        reference = reference_levels(features, x)
        fitted = [i for i in range(len(features)) if i not in reference]
        scored, chosen_c, negative = fit_scorecard([features[i] for i in fitted], x[:, fitted], y, max_rules)
        units = {a.name: a.unit for a in ATTRIBUTES if a.unit} | {n: d.unit for n, d in vocabulary.attributes.items() if d.unit}
        rules = rules_of(scored, units)
        scored_fields = {s.feature.field for s in scored}  # (a field with no rule left has nothing to be against)
        references = [rule_of(features[i])[0] for i in sorted(reference) if features[i].field in scored_fields]
    else:
        rules = rules_from(base, refit_points(base, train, y), train, y)
    half_life = base.decay.half_life_days if base is not None else HALF_LIFE_DAYS
    fits, engagement, peaks = fit_and_engagement(rules, train_all, half_life)
    limits = thresholds(peaks, fits, weekly_share(train_all, capacity))

    def render(limits: Thresholds) -> str:
        if base is not None:
            return render_from(base, rules, limits, fits, engagement)
        description = (f"Learned from {len(train):,} leads with an outcome ({int(y.sum()):,} won) by an L1 logistic "
                       f"scorecard; {POINTS_TO_DOUBLE} points double the odds. SQL at fit + engagement >= "
                       f"{limits.sql}, MQL at >= {limits.mql}.")
        return render_yaml(rules, limits, fits, engagement, name=name, description=description, leads=len(train),
                           base=None, left_out=left_out, unusable=unusable, references=references,
                           vocabulary=vocabulary)

    text = render(limits)
    ruleset = parse_ruleset_text(text)
    compile_ruleset(ruleset)  # what publishing does next
    report = backtested(ruleset, "suggested")
    current = None
    diff = None
    if base is not None:
        from baton.ruleset_diff import diff_rulesets, render_diff

        current = backtested(base, "current")
        diff = render_diff(diff_rulesets(base, ruleset), "current", "suggested")
    suggestion = Suggestion(text, ruleset, rules, len(train), len(held), left_out, unusable, report, current,
                            baselines(train, held, fields, event_types, amounts), limits, chosen_c, negative,
                            diff=diff, references=references)
    suggestion.seconds = time.perf_counter() - started
    return suggestion


def format_suggestion(s: Suggestion, out: str) -> str:
    """The report ``baton rules suggest`` prints before its JSON line."""
    h = s.headline()

    def f(value: float | None, pct: bool = False) -> str:
        return "n/a" if value is None else (f"{value:.1%}" if pct else f"{value:.3f}")

    lines = [f"learned from {s.train_leads:,} leads with an outcome; measured on {s.holdout_leads:,} holdout leads",
             f"wrote {out}: {h['fit_rules']} fit and {h['engagement_rules']} engagement rules "
             f"({POINTS_TO_DOUBLE} points double the odds)"]
    lines += [f"  {r.points:+5d}  {r.label}  [{r.comment(s.train_leads)}]" for r in s.rules]
    if s.references:
        lines.append(f"{REFERENCE_WORDS}: {', '.join(s.references)}")
    for leak in s.left_out:
        lines.append(f"left out: {leak.message}")
    if s.unusable:
        lines.append(f"not scorable by rule sets yet: {', '.join(s.unusable)}")
    if s.negative:
        lines.append("negative event signals not written (a score is its peak: points taken away later never "
                     "lower it): " + ", ".join(f"{label} ({points:+d})" for label, points in s.negative.items()))
    lines.append(f"stages: MQL at fit + engagement >= {s.limits.mql}, SQL at >= {s.limits.sql} "
                 f"(aimed at {s.limits.share:.1%} of leads)")
    lines.append(f"holdout (as `baton backtest` scores the file): ROC AUC {f(h['holdout_auc'])}, "
                 f"PR AUC {f(h['holdout_pr_auc'])}; SQL share {f(h['sql_share'], True)}, precision at capacity "
                 f"{f(h['precision_at_capacity'], True)}")
    if s.current is not None:
        lines.append(f"current rule set on the same holdout: ROC AUC {f(h['current_holdout_auc'])}")
    lines.append(f"baselines on the same raw columns and split: logistic {f(h['logistic_holdout_auc'])}, "
                 f"gradient boosting {f(h['boosting_holdout_auc'])}")
    if s.diff:
        lines += ["", s.diff.rstrip()]
    lines.append(f"{s.seconds:.2f} s; not published: compare it (notebook 03, baton backtest) first")
    return "\n".join(lines)
