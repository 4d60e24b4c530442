"""Engine throughput, and the same conditions evaluated by the ``rule-engine`` package, side by side.

    .venv/bin/python bench/engine.py [--events 100000] [--leads 2000] [--repeat 3] [--profile]
    .venv/bin/python bench/engine.py --instructions [--events 4000] [--leads 80]

What is timed (best of ``--repeat`` runs, ``time.perf_counter``):

* **Baton, default rule set**: the full engine, ``apply_event`` for every event of a realistic
  seeded stream (dedupe, traits, fit, engagement with caps/frequency/decay, disqualifiers,
  stage rules, transitions).
* **Baton, generated 50-rule set**: the same, with 20 fit and 30 engagement rules using every
  operator, plus the default stage rules and disqualifiers.
* **Baton, conditions only**: Baton's compiled conditions in the rule-engine side's loop, no
  scoring: how the two compare on condition evaluation alone.
* **rule-engine, the same 50 conditions**: each rule's condition translated to a rule-engine
  expression and compiled once (outside the timed loop); per event, the engagement rules indexed
  for the event's type are evaluated, and the fit rules when the event changed the lead's details,
  exactly the conditions Baton evaluates for those rules. Baton additionally runs its stage rules,
  disqualifiers, caps and decay, so the ratio understates the difference in condition evaluation.

Both sides share everything the engine does besides evaluating conditions: dedupe, caps, running
engagement totals, fit refreshed from the attributes that changed. What the rule-engine side does not
get is what Baton's compiler knows from a condition's structure: stage plans (a lead's attribute
leaves evaluated once per attribute change, checks skipped while they cannot turn true), engagement
rules memoised by the event values they read, and single-field fit rules and plan leaves answered
by the field's value (``chalicelib.rules.plans``).

rule-engine is given its fastest fair formulation: values are looked up, case-folded and turned into
numbers in plain Python before evaluation (flat symbols rather than the slow ``event.path`` mapping
fallback), so each expression does exactly the comparison Baton's operator does. A verification
pass checks both engines agree on every condition before anything is timed.

The prepared stream and rule sets are frozen out of the garbage collector's reach before timing
(``gc.freeze``): both sides then pay for the collections of what they allocate, not for scanning the
benchmark's own input again and again.

``--instructions`` counts CPU instructions per event instead of seconds, under valgrind (callgrind):
each side scores the stream once to warm up, then once or twice in separate processes, and the
difference is one warm run. With Python's hash seed fixed, counts repeat whatever else the machine
is doing, where its wall-clock speed varies by a third; they miss what memory stalls cost (more with
more leads awake at once), so they are the engine's work, not its time. Slow (valgrind runs Python
about 50 times slower): about five minutes at its default 4,000 events on two cores.

The last line printed is JSON with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rule_engine

from chalicelib.attributes import LEAD_FIELDS
from chalicelib.engine import apply_event, new_lead
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, RulesetCaches, compile_ruleset
from chalicelib.rules.conditions import Context, as_number, dig
from chalicelib.rules.loader import default_ruleset
from chalicelib.rules.model import AllOf, AnyOf, Condition, Leaf, NotOf, RuleSet
from chalicelib.state import LeadState, lead_id_for

T0 = 1_735_689_600.0  # 2025-01-01
DAY = 86400.0

# --- a realistic event stream ---------------------------------------------------------------------

TITLES = ["VP Marketing", "Chief Revenue Officer", "Head of Growth", "Marketing Manager", "Sales Director",
          "Software Engineer", "Analyst", "Founder & CEO", "Marketing Coordinator", "Operations Lead",
          "Account Executive", "Product Manager", "Data Scientist", "Consultant", "Office Manager",
          "Business Analyst", "Developer", "Growth Marketer", "IT Specialist", "Student"]
DEPARTMENTS = ["marketing", "sales", "engineering", "operations", "finance", "growth", "product", "hr"]
INDUSTRIES = ["software", "saas", "fintech", "retail", "manufacturing", "healthcare tech", "education", "media"]
COUNTRIES = ["us", "United States", "gb", "de", "fr", "nl", "ca", "in", "br", "jp", "au", "es"]
SENIORITY = ["c-level", "vp", "director", "manager", "individual contributor", "intern"]
SIZES: list[Any] = [3, 8, 25, 60, 120, "250", 400, "1,200", 3000, 12000, "50-200"]
FREE = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"]
PATHS = [("/pricing", 8), ("/pricing/enterprise", 2), ("/product/scoring", 8), ("/product/routing", 5),
         ("/integrations/salesforce", 3), ("/integrations/hubspot", 2), ("/blog/lead-scoring-101", 12),
         ("/blog/mql-vs-sql", 10), ("/blog/b2b-funnel", 8), ("/careers", 2), ("/jobs/123", 1), ("/", 15),
         ("/about", 4), ("/customers/acme", 5), ("/docs/api", 5), ("/security", 2), ("/contact", 2)]
TYPES = [("page_view", 5600), ("email_open", 1900), ("email_click", 700), ("form_submitted", 400),
         ("content_download", 400), ("webinar_registered", 200), ("webinar_attended", 150), ("trial_signup", 60),
         ("unsubscribe", 100), ("email_bounce", 50), ("demo_request", 12), ("contact_sales", 8),
         ("meeting_booked", 6), ("meeting_canceled", 4), ("spam_report", 10), ("identify", 200)]
CAMPAIGNS = ["spring-launch", "webinar-q2", "nurture-1", "nurture-2", "product-update", "newsletter-may"]
OFFERS = ["ebook-lead-scoring", "whitepaper-routing", "case-study-acme", "roi-calculator", "newsletter"]
SOURCES = ["google", "linkedin", "newsletter", "partner", "direct"]


def _persona(rnd: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    roll = rnd.random()
    if roll < 0.75:
        domain = f"company{n % 900}.com"
    elif roll < 0.90:
        domain = rnd.choice(FREE)
    elif roll < 0.93:
        domain = rnd.choice(["mailinator.com", "guerrillamail.com"])
    elif roll < 0.94:
        domain = rnd.choice(["rivalscore.io", "leadlytics.com"])
    elif roll < 0.96:
        domain = rnd.choice(["mit.edu", "ox.ac.uk", "stanford.edu"])
    else:
        domain = f"startup{n % 50}.io"
    traits: dict[str, Any] = {
        "first_name": f"Lead{n}", "job_title": rnd.choice(TITLES), "company": f"Company {n % 900}",
        "company_size": rnd.choice(SIZES), "industry": rnd.choice(INDUSTRIES), "country": rnd.choice(COUNTRIES),
        "utm_source": rnd.choice(SOURCES),
    }
    if rnd.random() < 0.7:
        traits["department"] = rnd.choice(DEPARTMENTS)
    if rnd.random() < 0.5:
        traits["seniority"] = rnd.choice(SENIORITY)
    if rnd.random() < 0.3:
        traits["annual_revenue"] = rnd.choice([500_000, 2_000_000, "10,000,000", 80_000_000])
    if rnd.random() < 0.2:
        traits["inquiry_type"] = rnd.choice(["product", "pricing", "partnership", "support", "demo", "job"])
    return f"lead{n}@{domain}", traits


def build_stream(leads: int, events: int, seed: int = 7) -> list[tuple[str, Event]]:
    rnd = random.Random(seed)
    personas = [_persona(rnd, n) for n in range(leads)]
    weights = [1.0 / (rank + leads / 20) for rank in range(leads)]  # some leads far busier than others
    type_names, type_weights = zip(*TYPES, strict=True)
    path_names, path_weights = zip(*PATHS, strict=True)
    seen: set[int] = set()
    out: list[tuple[str, Event]] = []
    ts = T0
    who = rnd.choices(range(leads), weights=weights, k=events)
    kinds = rnd.choices(type_names, weights=type_weights, k=events)
    for i in range(events):
        ts += rnd.expovariate(1 / 100.0)  # ~115 days for 100,000 events
        n = who[i]
        email, persona = personas[n]
        kind = kinds[i]
        props: dict[str, Any] = {}
        traits: dict[str, Any] = {}
        if n not in seen:  # the first thing we hear from a lead is a form with who they are
            seen.add(n)
            kind, traits = "form_submitted", dict(persona)
            props = {"form_id": "newsletter"}
        elif kind == "page_view":
            query = f"?utm_source={rnd.choice(SOURCES)}" if rnd.random() < 0.3 else ""
            props = {"url": f"https://www.baton.example{rnd.choices(path_names, path_weights)[0]}{query}",
                     "title": "Baton"}
        elif kind in ("email_open", "email_click"):
            props = {"campaign": rnd.choice(CAMPAIGNS)}
            if kind == "email_click":
                props["url"] = f"https://www.baton.example{rnd.choices(path_names, path_weights)[0]}"
        elif kind in ("form_submitted", "content_download"):
            props = {"form_id": rnd.choice(OFFERS)}
            if rnd.random() < 0.3:
                traits = {"job_title": rnd.choice(TITLES), "phone": f"+1 555 {rnd.randrange(10_000):04d}"}
        elif kind in ("webinar_registered", "webinar_attended"):
            props = {"campaign": "webinar-q2", "asset": "webinar-lead-scoring"}
        elif kind == "identify":
            traits = {"seniority": rnd.choice(SENIORITY)} if rnd.random() < 0.5 else {"company_size": rnd.choice(SIZES)}
        elif kind in ("demo_request", "contact_sales", "meeting_booked"):
            props = {"form_id": kind.replace("_", "-")}
        out.append((email, Event(f"evt-{i:07d}", kind, ts, email=email, properties=props, traits=traits,
                                 source="bench")))
    return out


# --- a generated 50-rule rule set -----------------------------------------------------------------


def generated_ruleset(seed: int = 11) -> RuleSet:
    """20 fit and 30 engagement rules drawn from templates covering every operator and combinator."""
    rnd = random.Random(seed)
    fit_templates: list[dict[str, Any]] = [
        {"field": "job_title", "op": "matches", "value": r"(?i)\b(chief|ceo|cto|cmo|cro|vp|founder|president)\b"},
        {"field": "job_title", "op": "matches", "value": r"(?i)\b(head|director|manager|lead)\b"},
        {"field": "job_title", "op": "contains", "value": "marketing"},
        {"field": "job_title", "op": "starts_with", "value": "vp"},
        {"field": "seniority", "op": "in", "value": ["c-level", "vp", "director"]},
        {"field": "seniority", "op": "eq", "value": "manager"},
        {"field": "department", "op": "in", "value": ["sales", "marketing", "growth", "revenue operations"]},
        {"field": "department", "op": "ne", "value": "hr"},
        {"all": [{"field": "company_size", "op": "gte", "value": 50}, {"field": "company_size", "op": "lt", "value": 1000}]},
        {"field": "company_size", "op": "gte", "value": 1000},
        {"field": "company_size", "op": "lte", "value": 10},
        {"field": "annual_revenue", "op": "gt", "value": 5_000_000},
        {"field": "industry", "op": "in_list", "value": "target_industries"},
        {"field": "country", "op": "in_list", "value": "sales_countries"},
        {"field": "country", "op": "not_in", "value": ["in", "br", "jp"]},
        {"all": [{"field": "email_domain", "op": "exists"}, {"not": {"field": "email_domain", "op": "in_list", "value": "free_mail"}}]},
        {"field": "email_domain", "op": "in_list", "value": "free_mail"},
        {"field": "email_domain", "op": "ends_with", "value": ".io"},
        {"any": [{"field": "custom.inquiry_type", "op": "eq", "value": "pricing"}, {"field": "utm_source", "op": "eq", "value": "partner"}]},
        {"field": "phone", "op": "exists"},
    ]
    engagement_templates: list[tuple[list[str], dict[str, Any] | None]] = [
        (["page_view"], {"field": "event.path", "op": "starts_with", "value": "/pricing"}),
        (["page_view"], {"field": "event.path", "op": "eq", "value": "/pricing/enterprise"}),
        (["page_view"], {"any": [{"field": "event.path", "op": "starts_with", "value": "/product"},
                                 {"field": "event.path", "op": "starts_with", "value": "/integrations"}]}),
        (["page_view"], {"field": "event.path", "op": "starts_with", "value": "/blog"}),
        (["page_view"], {"field": "event.path", "op": "matches", "value": r"^/(careers|jobs)\b"}),
        (["page_view"], {"field": "event.path", "op": "in", "value": ["/customers/acme", "/security", "/docs/api"]}),
        (["page_view"], {"field": "event.url", "op": "contains", "value": "utm_source=linkedin"}),
        (["page_view"], {"all": [{"field": "event.path", "op": "starts_with", "value": "/docs"},
                                 {"field": "job_title", "op": "matches", "value": r"(?i)engineer|developer"}]}),
        (["page_view"], {"field": "event.path", "op": "ends_with", "value": "/contact"}),
        (["page_view"], {"not": {"field": "event.path", "op": "in", "value": ["/", "/about"]}}),
        (["email_open"], None),
        (["email_open"], {"field": "event.campaign", "op": "starts_with", "value": "nurture"}),
        (["email_click"], {"field": "event.campaign", "op": "in", "value": ["spring-launch", "product-update"]}),
        (["email_click"], {"field": "event.url", "op": "contains", "value": "/pricing"}),
        (["email_click"], None),
        (["email_open", "email_click"], {"field": "event.campaign", "op": "eq", "value": "webinar-q2"}),
        (["form_submitted"], {"field": "event.offer", "op": "eq", "value": "newsletter"}),
        (["form_submitted", "content_download"], {"field": "event.offer", "op": "matches", "value": "^(ebook|whitepaper)-"}),
        (["content_download"], {"field": "event.offer", "op": "in", "value": ["case-study-acme", "roi-calculator"]}),
        (["content_download"], {"field": "event.offer", "op": "exists"}),
        (["webinar_registered"], {"field": "event.asset", "op": "exists"}),
        (["webinar_attended"], {"field": "event.campaign", "op": "eq", "value": "webinar-q2"}),
        (["trial_signup"], None),
        (["demo_request"], None),
        (["contact_sales"], {"field": "event.offer", "op": "exists"}),
        (["meeting_booked"], None),
        (["meeting_canceled"], None),
        (["unsubscribe"], None),
        (["email_bounce"], None),
        (["spam_report"], None),
    ]
    fit = [{"id": f"fit-{i:02d}", "label": f"Fit rule {i}", "when": when,
            "points": rnd.choice([-10, -5, 2, 4, 6, 8, 10])} for i, when in enumerate(fit_templates)]
    engagement = []
    for i, (events, when) in enumerate(engagement_templates):
        points = rnd.choice([-5, 1, 2, 3, 5, 10]) if when is not None else rnd.choice([1, 3, 10, -10])
        rule: dict[str, Any] = {"id": f"eng-{i:02d}", "label": f"Engagement rule {i}", "events": events,
                                "points": points}
        if when is not None:
            rule["when"] = when
        roll = rnd.random()
        if roll < 0.5:
            rule["caps"] = {"max_count": rnd.choice([1, 3, 5]), "window_days": rnd.choice([7, 30])}
        elif roll < 0.6:
            rule["caps"] = {"max_count": 2}
        elif roll < 0.7:
            rule["frequency"] = {"count": 3, "within_days": 7}
        if rnd.random() < 0.2:
            rule["half_life_days"] = rnd.choice([7, 14, 60])
        engagement.append(rule)
    base = default_ruleset().model_dump(by_alias=True, exclude_none=True)
    base.update(name="generated-50", fit=fit, engagement=engagement)
    return RuleSet.model_validate(base)


# --- Baton ----------------------------------------------------------------------------------------


def run_baton(stream: list[tuple[str, Event]], rs: CompiledRuleset) -> tuple[float, dict[str, LeadState]]:
    states: dict[str, LeadState] = {}
    get = states.get
    start = time.perf_counter()
    for email, event in stream:
        state = get(email)
        if state is None:
            state = states[email] = new_lead(lead_id_for(email), email)
        apply_event(state, event, rs, event.ts)
    return time.perf_counter() - start, states


def run_baton_conditions(stream: list[tuple[str, Event]], rs: CompiledRuleset) -> float:
    """Only Baton's compiled conditions, in exactly the loop the rule-engine side runs (no scoring)."""
    leads: dict[str, dict[str, Any]] = {}
    by_type = {t: [r.test for r in rules if r.test is not None] for t, rules in rs.engagement_by_type.items()}
    fit = [r.test for r in rs.fit]
    merge = RuleEngineSide.merge
    start = time.perf_counter()
    for email, event in stream:
        attrs = leads.get(email)
        if attrs is None:
            attrs = leads[email] = {}
        changed = merge(attrs, email, event.traits) if event.traits or not attrs else False
        tests = by_type.get(event.type)
        if tests:
            ctx = Context(attrs, event)
            for test in tests:
                test(ctx)
        if changed:
            ctx = Context(attrs)
            for test in fit:
                test(ctx)
    return time.perf_counter() - start


# --- rule-engine: the same conditions -------------------------------------------------------------

Value = Callable[[dict[str, Any], Any], Any]


def _path_of(props: dict[str, Any]) -> Any:
    path = props.get("path")
    if path is None and isinstance(props.get("url"), str):
        path = urlsplit(props["url"]).path or "/"
    return path


def raw_value(name: str) -> Value:
    """How to read a field, written plainly for the rule-engine side (same meaning as Baton's)."""
    head, _, rest = name.partition(".")
    if head == "custom":
        keys = tuple(rest.split("."))
        return lambda attrs, event: dig(attrs.get("custom"), keys)
    if head == "event":
        sub, _, deeper = rest.partition(".")
        if sub == "type":
            return lambda attrs, event: event.type
        if sub == "source":
            return lambda attrs, event: event.source
        if sub == "path":
            return lambda attrs, event: _path_of(event.properties)
        if sub == "offer":
            return lambda attrs, event: event.properties.get("offer") or event.properties.get("form_id")
        keys = tuple((deeper if sub == "properties" else rest).split("."))
        return lambda attrs, event: dig(event.properties, keys)
    return lambda attrs, event: attrs.get(name)


def _folded(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _text(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else None


def _raw_text(value: Any) -> Any:
    return value if isinstance(value, str) else None


def _present(value: Any) -> bool:
    return value not in (None, "")


# Variant prefix -> how a value is prepared for that kind of comparison.
VARIANTS: dict[str, Callable[[Any], Any]] = {
    "lc": _folded, "s": _text, "r": _raw_text, "n": as_number, "p": _present, "v": lambda v: v,
}


def variant(name: str, lists: dict[str, frozenset[str]]) -> Callable[[Any], Any]:
    if name.startswith("list:"):
        members = lists[name.removeprefix("list:")]
        return lambda v: isinstance(v, str) and v.casefold() in members
    return VARIANTS[name]


def _symbol(field: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", field.lower())


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


LARGE_LIST = 100


class Translator:
    """Baton condition -> rule-engine expression over flat, pre-normalised symbols."""

    def __init__(self, lists: dict[str, frozenset[str]]) -> None:
        self.lists = lists
        self.symbols: dict[str, tuple[str, str]] = {}  # symbol -> (variant, field)

    def _use(self, variant: str, field: str) -> str:
        name = f"{variant}_{_symbol(field)}"
        self.symbols[name] = (variant, field)
        return name

    def __call__(self, cond: Condition) -> str:
        if isinstance(cond, AllOf):
            return " and ".join(f"({self(c)})" for c in cond.all)
        if isinstance(cond, AnyOf):
            return " or ".join(f"({self(c)})" for c in cond.any)
        if isinstance(cond, NotOf):
            return f"not ({self(cond.not_)})"
        assert isinstance(cond, Leaf)
        return self._leaf(cond)

    def _leaf(self, leaf: Leaf) -> str:
        field, op, value = leaf.field, leaf.op, leaf.value
        if op in ("eq", "ne"):
            compare = "==" if op == "eq" else "!="
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return f"{self._use('n', field)} {compare} {_literal(value)}"
            return f"{self._use('lc', field)} {compare} {_literal(_folded(value))}"
        if op in ("in", "not_in"):
            options = ", ".join(_literal(_folded(v)) for v in value)
            test = f"{self._use('lc', field)} in [{options}]"
            return test if op == "in" else f"not ({test})"
        if op == "in_list":
            members = self.lists[value]
            if len(members) > LARGE_LIST:
                # rule-engine type-checks every member on each `in` (8 ms for the 10,000-domain
                # disposable blocklist): the membership is prepared in Python, like other values.
                name = f"in_{_symbol(value)}_{self._use('lc', field)}"
                self.symbols[name] = (f"list:{value}", field)
                return f"{name} == true"
            options = ", ".join(_literal(v) for v in sorted(members))
            return f"{self._use('lc', field)} in [{options}]"
        if op == "contains":
            return f"{self._use('s', field)} != null and {_literal(value.casefold())} in {self._use('s', field)}"
        if op == "starts_with":  # =~ is re.match: anchored at the start
            return f"{self._use('s', field)} =~ {_literal(re.escape(value.casefold()))}"
        if op == "ends_with":
            return f"{self._use('s', field)} =~~ {_literal(re.escape(value.casefold()) + '$')}"
        if op == "matches":  # =~~ is re.search, on the value as written (patterns carry their own (?i))
            return f"{self._use('r', field)} =~~ {_literal(value)}"
        if op in ("gt", "gte", "lt", "lte"):
            symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            number = self._use("n", field)
            return f"{number} != null and {number} {symbol} {_literal(value)}"
        if op == "exists":
            wanted = value is None or bool(value)
            return f"{self._use('p', field)} == {_literal(wanted)}"
        raise AssertionError(op)


class RuleEngineSide:
    """The 50 conditions as compiled rule-engine Rules, evaluated the way Baton evaluates them."""

    def __init__(self, compiled: CompiledRuleset) -> None:
        ruleset = compiled.source
        self.context = rule_engine.Context(default_value=None)
        self.translate = Translator(compiled.lists)
        self.fit: list[tuple[str, Any]] = []
        fit_symbols: set[str] = set()
        for rule in ruleset.fit:
            expr = self.translate(rule.when)
            fit_symbols |= self._symbols_in(expr)
            self.fit.append((rule.id, rule_engine.Rule(expr, context=self.context)))
        self.by_type: dict[str, list[tuple[str, Any]]] = {}
        type_symbols: dict[str, set[str]] = {}
        for engagement in ruleset.engagement:
            if engagement.when is None:
                continue
            expr = self.translate(engagement.when)
            compiled_rule = rule_engine.Rule(expr, context=self.context)
            for event_type in engagement.events:
                self.by_type.setdefault(event_type, []).append((engagement.id, compiled_rule))
                type_symbols.setdefault(event_type, set()).update(self._symbols_in(expr))
        self.expressions = len(self.fit) + sum(1 for r in ruleset.engagement if r.when is not None)
        self.fit_resolvers = self._resolvers(fit_symbols)
        self.type_resolvers = {t: self._resolvers(s) for t, s in type_symbols.items()}

    def _symbols_in(self, expr: str) -> set[str]:
        return {s for s in self.translate.symbols if re.search(rf"\b{re.escape(s)}\b", expr)}

    def _resolvers(self, symbols: set[str]) -> list[tuple[str, Callable[[Any], Any], Value]]:
        return [(s, variant(self.translate.symbols[s][0], self.translate.lists),
                 raw_value(self.translate.symbols[s][1])) for s in sorted(symbols)]

    @staticmethod
    def merge(attrs: dict[str, Any], email: str, traits: Mapping[str, Any]) -> bool:
        """Fold traits into the lead's details (same layout as Baton: custom fields nested)."""
        if "email" not in attrs:
            attrs["email"], attrs["email_domain"] = email, email.rpartition("@")[2]
        changed = False
        for key, value in traits.items():
            if value is None or value == "" or key in ("email", "email_domain"):
                continue
            if isinstance(value, str):
                value = value.strip()
                if key in ("company_size", "annual_revenue"):
                    number = as_number(value)
                    if number is not None:
                        value = int(number) if number.is_integer() else number
            target = attrs if key in LEAD_FIELDS else attrs.setdefault("custom", {})
            if target.get(key) != value:
                target[key] = value
                changed = True
        return changed

    def run(self, stream: list[tuple[str, Event]], check: CompiledRuleset | None = None) -> tuple[float, int]:
        """Evaluate every indexed condition for every event; with ``check``, compare with Baton's."""
        leads: dict[str, dict[str, Any]] = {}
        by_type, type_resolvers, fit, fit_resolvers = self.by_type, self.type_resolvers, self.fit, self.fit_resolvers
        fit_tests = {r.id: r.test for r in check.fit} if check else {}
        eng_tests = {r.id: r.test for r in check.engagement_by_id.values()} if check else {}
        checked = 0
        start = time.perf_counter()
        for email, event in stream:
            attrs = leads.get(email)
            if attrs is None:
                attrs = leads[email] = {}
            changed = self.merge(attrs, email, event.traits) if event.traits or not attrs else False
            rules = by_type.get(event.type)
            if rules:
                thing = {name: prepare(value(attrs, event)) for name, prepare, value in type_resolvers[event.type]}
                for rule_id, rule in rules:
                    hit = rule.matches(thing)
                    if check is not None:
                        checked += 1
                        want = eng_tests[rule_id](Context(attrs, event))  # type: ignore[misc]
                        assert hit == want, (rule_id, rule.text, thing, want)
            if changed:
                thing = {name: prepare(value(attrs, None)) for name, prepare, value in fit_resolvers}
                for rule_id, rule in fit:
                    hit = rule.matches(thing)
                    if check is not None:
                        checked += 1
                        assert hit == fit_tests[rule_id](Context(attrs)), (rule_id, rule.text, thing)
        return time.perf_counter() - start, checked


# --- rule-engine inside the same engine: like for like -------------------------------------------

SCORE_FIELDS = ("fit", "grade", "engagement", "hand_raiser", "stage", "fast_track")


def context_value(name: str) -> Callable[[Context], Any]:
    """How to read a field from Baton's condition context (the same meaning as ``raw_value``)."""
    if name in SCORE_FIELDS:
        return lambda c: getattr(c, name)  # engagement stays lazy: computed only if an expression reads it
    read = raw_value(name)
    return lambda c: read(c.attrs, c.event) if (c.event is not None or not name.startswith("event.")) else None


class RuleEngineConditions:
    """Every condition of a compiled rule set (fit, engagement, disqualifiers, stage rules, routes) as a
    rule-engine ``Rule`` compiled once, resolving its symbols lazily from Baton's context."""

    def __init__(self, compiled: CompiledRuleset) -> None:
        self.translate = Translator(compiled.lists)
        self.resolvers: dict[str, tuple[Callable[[Any], Any], Callable[[Context], Any]]] = {}
        self.context = rule_engine.Context(resolver=self._resolve)
        self.evaluations = 0
        self.counting = False

    def _resolve(self, ctx: Context, name: str) -> Any:
        prepare, read = self.resolvers[name]
        return prepare(read(ctx))

    def predicate(self, cond: Condition) -> Callable[[Context], bool]:
        expr = self.translate(cond)
        for name, (kind, field) in self.translate.symbols.items():
            if name not in self.resolvers:
                self.resolvers[name] = (variant(kind, self.translate.lists), context_value(field))
        matches = rule_engine.Rule(expr, context=self.context).matches

        def test(ctx: Context) -> bool:
            if self.counting:
                self.evaluations += 1
            return matches(ctx)

        return test


def rule_engine_ruleset(compiled: CompiledRuleset) -> tuple[CompiledRuleset, RuleEngineConditions]:
    """``compiled`` with every condition evaluated by rule-engine instead of Baton's closures.

    The engine is the same code (dedupe, traits, fit on attribute change, engagement with caps,
    frequency and decay, disqualifiers and stage rules per event, transitions, routing): only the
    conditions differ. rule-engine cannot fold a lead's attribute leaves into residual conditions, so
    this rule set has no caches (no planner, no memos): the engine evaluates every condition whole, per event.
    """
    source = compiled.source
    conditions = RuleEngineConditions(compiled)
    p = conditions.predicate
    fit = tuple(replace(r, test=p(rule.when)) for r, rule in zip(compiled.fit, source.fit, strict=True))
    eng_source = {r.id: r for r in source.engagement}
    by_id = {rid: replace(r, test=None if (when := eng_source[rid].when) is None else p(when))
             for rid, r in compiled.engagement_by_id.items()}
    by_type = {t: tuple(by_id[r.id] for r in rules) for t, rules in compiled.engagement_by_type.items()}
    disqualifiers = tuple(replace(d, test=p(rule.when))
                          for d, rule in zip(compiled.disqualifiers, source.disqualifiers, strict=True))
    stages = source.stages
    routes = tuple(replace(r, test=p(route.when) if route.when is not None else None)
                   for r, route in zip(compiled.routes, source.handoff.routes, strict=True))
    swapped = replace(
        compiled, fit=fit, engagement_by_type=by_type, engagement_by_id=by_id, disqualifiers=disqualifiers,
        mql=p(stages.mql.when), sql=p(stages.sql.when),
        fast_track=p(stages.fast_track.when) if stages.fast_track else None, routes=routes,
        caches=RulesetCaches(),
    )
    return swapped, conditions


def same_states(a: dict[str, LeadState], b: dict[str, LeadState]) -> bool:
    return a.keys() == b.keys() and all(
        (x.stage, x.fit, x.fit_rules, x.engagement_by_rule, x.caps, x.frequency_matches, x.disqualified_reason, x.route, x.stage_history)
        == (y.stage, y.fit, y.fit_rules, y.engagement_by_rule, y.caps, y.frequency_matches, y.disqualified_reason, y.route, y.stage_history)
        for x, y in ((a[k], b[k]) for k in a)
    )


# --- reporting ------------------------------------------------------------------------------------


def best_of_interleaved(repeat: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Best time of each, the runs taking turns so a busy moment on the machine hits all of them."""
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeat):
        for name, fn in runs.items():
            best[name] = min(best[name], fn())
    return best


# --- instructions per event (valgrind) ---------------------------------------------------------------

SIDES = ("default", "generated", "rule_engine_engine")


def score_side(side: str, events: int, leads: int, seed: int, runs: int) -> None:
    """Score the stream ``runs`` times with one side, printing nothing: what ``--instructions`` counts."""
    stream = build_stream(leads, events, seed)
    if side == "default":
        rs = compile_ruleset(default_ruleset(), version=1)
    else:
        rs = compile_ruleset(generated_ruleset(), version=2)
        if side == "rule_engine_engine":
            rs = rule_engine_ruleset(rs)[0]
    gc.collect()
    gc.freeze()
    for _ in range(runs):
        run_baton(stream, rs)


def count_instructions(side: str, events: int, leads: int, seed: int, runs: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "--score-side", side, "--runs", str(runs), "--events", str(events), "--leads", str(leads),
               "--seed", str(seed)]
    # One hash seed: dict and set layouts (and so the counts) otherwise vary by a few per cent a run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def instructions(events: int, leads: int, seed: int) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    # Per side, processes scoring once and twice: they differ by one warm run alone (imports, stream,
    # compile and the first run alike). Run side by side, one per core: counts do not mind.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = {(side, runs): pool.submit(count_instructions, side, events, leads, seed, runs)
                  for side in SIDES for runs in (1, 2)}
        per_event = {side: (counts[side, 2].result() - counts[side, 1].result()) / events for side in SIDES}
    ratio = per_event["rule_engine_engine"] / per_event["generated"]
    print(f"Baton engine benchmark, CPU instructions per event (valgrind): {events:,} events, {leads:,} leads, "
          f"one warm run (Python {platform.python_version()}, rule-engine {rule_engine.__version__})")
    print(f"  Baton, default rule set:                   {per_event['default']:>12,.0f}")
    print(f"  Baton, generated 50-rule set:              {per_event['generated']:>12,.0f}")
    print(f"  rule-engine conditions in the same engine: {per_event['rule_engine_engine']:>12,.0f}")
    print(f"  ratio (50 rules): {ratio:.1f}x; 50x would need {per_event['rule_engine_engine'] / 50:,.0f} per event")
    print(json.dumps({
        "events": events, "leads": leads,
        "instructions_per_event": round(per_event["default"]),
        "instructions_per_event_50_rules": round(per_event["generated"]),
        "rule_engine_instructions_per_event": round(per_event["rule_engine_engine"]),
        "instructions_ratio_vs_rule_engine": round(ratio, 2),
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="default 100,000 (4,000 with --instructions)")
    parser.add_argument("--leads", type=int, help="default 2,000 (80 with --instructions)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile Baton on the 50-rule set and print the top")
    parser.add_argument("--instructions", action="store_true", help="count instructions per event under valgrind")
    parser.add_argument("--score-side", choices=SIDES, help=argparse.SUPPRESS)  # (what --instructions runs)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score_side:
        score_side(args.score_side, args.events, args.leads, args.seed, args.runs)
        return 0
    if args.instructions:
        return instructions(args.events or 4_000, args.leads or 80, args.seed)
    args.events = args.events or 100_000
    args.leads = args.leads or 2_000

    t = time.perf_counter()
    stream = build_stream(args.leads, args.events, args.seed)
    default = compile_ruleset(default_ruleset(), version=1)
    generated = compile_ruleset(generated_ruleset(), version=2)
    side = RuleEngineSide(generated)
    _, checked = side.run(stream[: min(len(stream), 20_000)], check=generated)
    swapped, re_conditions = rule_engine_ruleset(generated)
    prefix = stream[: min(len(stream), 20_000)]
    re_conditions.counting = True
    agree = same_states(run_baton(prefix, generated)[1], run_baton(prefix, swapped)[1])
    re_conditions.counting = False
    assert agree, "rule-engine inside the engine must give exactly Baton's states"
    evaluations_per_event = re_conditions.evaluations / len(prefix)
    setup = time.perf_counter() - t
    # The stream is input, held whole only by the benchmark (a Lambda holds one batch): frozen, so the
    # collector's passes scan what scoring makes, not 100,000 prepared events each time (both sides).
    gc.collect()
    gc.freeze()
    counts: dict[str, int] = {}
    for _, event in stream:
        counts[event.type] = counts.get(event.type, 0) + 1

    n = len(stream)
    best = best_of_interleaved(args.repeat, {
        "default": lambda: run_baton(stream, default)[0],
        "generated": lambda: run_baton(stream, generated)[0],
        "conditions": lambda: run_baton_conditions(stream, generated),
        "rule_engine": lambda: side.run(stream)[0],
        "rule_engine_engine": lambda: run_baton(stream, swapped)[0],
    })
    baton_default, baton_50 = best["default"], best["generated"]
    rule_engine_engine_50, rule_engine_50 = best["rule_engine_engine"], best["rule_engine"]
    conditions_50 = best["conditions"]
    _, states = run_baton(stream, generated)
    stages: dict[str, int] = {}
    for state in states.values():
        stages[state.stage] = stages.get(state.stage, 0) + 1

    def rate(seconds: float) -> float:
        return n / seconds

    ratio = rate(baton_50) / rate(rule_engine_engine_50)  # like for like: the same engine, same work
    generated_rules = len(generated.source.fit) + len(generated.source.engagement)
    print(f"Baton engine benchmark: {n:,} events, {args.leads:,} leads, best of {args.repeat} "
          f"(Python {platform.python_version()}, rule-engine {rule_engine.__version__})")
    print("  stream: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    print(f"  setup (stream, compile, {checked:,} condition results cross-checked, all agree): {setup:.1f} s")
    print(f"  Baton, default rule set ({len(default.fit)} fit, {len(default.engagement_by_id)} engagement): "
          f"{rate(baton_default):>10,.0f} events/s  {baton_default / n * 1e6:6.1f} µs/event")
    print(f"  Baton, generated {generated_rules}-rule set:            "
          f"{rate(baton_50):>10,.0f} events/s  {baton_50 / n * 1e6:6.1f} µs/event")
    print(f"  rule-engine conditions in the same engine:      "
          f"{rate(rule_engine_engine_50):>10,.0f} events/s  {rule_engine_engine_50 / n * 1e6:6.1f} µs/event"
          f"  ({evaluations_per_event:.1f} rule-engine evaluations/event; states identical to Baton's)")
    print(f"  rule-engine, engagement + fit conditions only:  "
          f"{rate(rule_engine_50):>10,.0f} events/s  {rule_engine_50 / n * 1e6:6.1f} µs/event")
    print(f"  Baton, the same conditions only (no scoring):   "
          f"{rate(conditions_50):>10,.0f} events/s  {conditions_50 / n * 1e6:6.1f} µs/event")
    print(f"  ratio Baton / rule-engine, same engine, same work (50 rules): {ratio:.1f}x (target >= 50x); "
          f"engagement + fit conditions alone: {rate(conditions_50) / rate(rule_engine_50):.1f}x")
    print("  leads by stage (50-rule set): " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())))

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run_baton(stream, generated)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)

    print(json.dumps({
        "events": n,
        "leads": args.leads,
        "events_per_s": round(rate(baton_default)),
        "events_per_s_50_rules": round(rate(baton_50)),
        "rule_engine_events_per_s": round(rate(rule_engine_engine_50)),
        "rule_engine_evaluations_per_event": round(evaluations_per_event, 2),
        "ratio_vs_rule_engine": round(ratio, 2),
        "rule_engine_conditions_only_events_per_s": round(rate(rule_engine_50)),
        "us_per_event": round(baton_default / n * 1e6, 2),
        "us_per_event_50_rules": round(baton_50 / n * 1e6, 2),
        "rule_engine_us_per_event": round(rule_engine_engine_50 / n * 1e6, 2),
        "conditions_only_events_per_s": round(rate(conditions_50)),
        "conditions_only_ratio": round(rate(conditions_50) / rate(rule_engine_50), 2),
        "conditions_cross_checked": checked,
        "repeat": args.repeat,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
