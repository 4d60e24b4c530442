"""Compile a validated rule set, once per version: conditions to closures (``conditions``) and
engagement rules indexed by event type. Beside the rules, their caches (``RulesetCaches``): the memos
by event and attribute values and the planner that folds a lead's attributes into what is left to
check per event (``plans``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from chalicelib.attributes import LEAD_FIELDS, Declared
from chalicelib.events import KNOWN_TYPES
from chalicelib.rules.conditions import Context, Predicate, compile_condition, condition_fields
from chalicelib.rules.model import Condition, EngagementRule, Route, RuleSet, engagement_floors
from chalicelib.rules.plans import EventMemo, FitMemo, LeadPlans, StagePlan, StagePlanner, attribute_key

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class CompiledFit:
    id: str
    label: str
    points: int
    test: Predicate
    reads: frozenset[str] | None = None  # the attributes its test reads (None: more than attributes)


@dataclass(frozen=True, slots=True)
class CompiledEngagement:
    id: str
    label: str
    points: int
    test: Predicate | None
    half_life: float | None  # seconds; None: no decay
    cap_count: int | None  # hits allowed per window (max_points folded in)
    cap_window: float | None  # seconds; None: ever
    freq_count: int | None
    freq_window: float | None
    group: int = 0  # index of its half-life in CompiledRuleset.half_lives (its running total)
    # An amount rule: ``points`` per ``amount_per`` of the event property at ``amount`` (its path);
    # its cap_count is max_count alone and cap_points caps the points themselves.
    amount: tuple[str, ...] | None = None
    amount_per: float = 1.0
    cap_points: float | None = None
    # Frequency or amount: the award loop checks this one flag before either (a plain rule pays nothing more).
    gated: bool = False

    @property
    def rate(self) -> str | None:
        """How an amount rule awards, for people: ``1 point per 30 seconds``."""
        if self.amount is None:
            return None
        unit = "point" if abs(self.points) == 1 else "points"
        return f"{self.points} {unit} per {self.amount_per:g} {'.'.join(self.amount)}"


@dataclass(frozen=True, slots=True)
class CompiledDisqualifier:
    id: str
    reason: str
    test: Predicate


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    channel: str
    sla_hours: float
    escalation_channel: str | None
    test: Predicate | None


@dataclass(slots=True, eq=False)
class RulesetCaches:
    """What a compiled rule set keeps to decide faster, never what it decides: without any of them
    (``RulesetCaches()``) the engine evaluates every condition whole and decides the same.

    Each stands for the rule objects it was built from, and the engine checks that by identity before
    use, so a copy of the rule set made with other rules (``dataclasses.replace``) goes the long way
    for those rules.
    """

    # The fit rules answered by attribute values (stands for ``CompiledRuleset.fit``).
    fit: FitMemo | None = None
    # Per event type, its engagement rules with their event leaves memoised by the event's values
    # (each stands for that type's tuple in ``CompiledRuleset.engagement_by_type``).
    events: dict[str, EventMemo] = field(default_factory=dict)
    # The disqualifiers and stage rules reduced per lead by its attributes, plans shared by the
    # attribute leaves' values (stands for the rule set's disqualifiers and stage predicates).
    planner: StagePlanner | None = None
    # Each lead's plans between its events, by lead id.
    leads: LeadPlans = field(default_factory=LeadPlans)


def stage_floors(when: Condition) -> tuple[tuple[float, bool], ...]:
    """The distinct engagement floors of a stage condition, lowest first: (value, strictly above)."""
    return tuple(sorted(set(engagement_floors(when))))


@dataclass(frozen=True)
class CompiledRuleset:
    version: int | None
    source: RuleSet
    fit: tuple[CompiledFit, ...]
    engagement_by_type: dict[str, tuple[CompiledEngagement, ...]]
    engagement_by_id: dict[str, CompiledEngagement]
    disqualifiers: tuple[CompiledDisqualifier, ...]
    grades: tuple[tuple[str, float], ...]  # (grade, min_fit) highest first; last is -inf
    hand_raisers: frozenset[str]
    mql: Predicate
    sql: Predicate
    fast_track: Predicate | None
    sql_requires_mql: bool
    recycle_cooldown: float
    routes: tuple[CompiledRoute, ...]
    default_route: CompiledRoute
    mql_route: CompiledRoute
    notify: frozenset[str]
    lists: dict[str, frozenset[str]] = field(repr=False)
    # The distinct half-lives (None: no decay); a lead keeps one running engagement total for each.
    half_lives: tuple[float | None, ...] = ()
    decay_rates: tuple[float, ...] = ()  # ln 2 / half-life per half-life, 0.0 for no decay
    # Names the rules' grouping by half-life: a lead's totals made under another grouping are rebuilt.
    decay_basis: str = ""
    # The vocabulary: event types the API and imports accept (Baton's own and the declared ones), and
    # the declared custom attributes by name (after ``custom.``), whose values are coerced to their type.
    event_types: frozenset[str] = KNOWN_TYPES
    declared: dict[str, Declared] = field(default_factory=dict, repr=False, compare=False)
    # Derived from the rules above to decide faster, not part of them (an empty one: the long way).
    caches: RulesetCaches = field(default_factory=RulesetCaches, repr=False, compare=False)
    # The disqualifiers and stage rules as a plan of whole conditions: what the stage ladder walks
    # without a planner (made from the fields above, so a copy with other rules has its own).
    whole_plan: StagePlan = field(init=False, repr=False, compare=False)
    # Per stage rule ("mql", "sql", "fast_track"), its engagement floors (``stage_floors``): what a
    # transition's reason tries, read once here rather than from the condition on every transition.
    floors: dict[str, tuple[tuple[float, bool], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fast_track = self.fast_track if self.fast_track is not None else False
        plan = StagePlan(tuple((rule, rule.test) for rule in self.disqualifiers), fast_track, self.mql, self.sql,
                         idle=False, reads_engagement=False)
        object.__setattr__(self, "whole_plan", plan)  # (frozen)
        stages = self.source.stages
        rules = {"mql": stages.mql, "sql": stages.sql, "fast_track": stages.fast_track}
        object.__setattr__(self, "floors", {name: stage_floors(rule.when) for name, rule in rules.items()
                                               if rule is not None})

    def grade_for(self, fit: float) -> str:
        for grade, floor in self.grades:
            if fit >= floor:
                return grade
        return self.grades[-1][0]

    def route_for(self, ctx: Context) -> CompiledRoute:
        for route in self.routes:
            if route.test is None or route.test(ctx):
                return route
        return self.default_route


def _attributes_read(cond: Condition) -> frozenset[str] | None:
    """The lead attributes (top-level keys: custom fields are under "custom") a condition reads, or
    None when it reads anything else."""
    names = condition_fields(cond)
    if not all(name in LEAD_FIELDS or name.startswith("custom.") for name in names):
        return None
    return frozenset(attribute_key(name) for name in names)


def _load_lists(ruleset: RuleSet) -> dict[str, frozenset[str]]:
    lists = {name: frozenset(v.casefold() for v in values) for name, values in ruleset.lists.items()}
    if "disposable" in _referenced_lists(ruleset):
        # Imported only when a rule set uses it: the blocklist is large.
        from disposable_email_domains import blocklist

        lists["disposable"] = frozenset(blocklist)
    return lists


def _referenced_lists(ruleset: RuleSet) -> set[str]:
    from chalicelib.rules.model import _list_refs

    return _list_refs(ruleset.model_dump(by_alias=True))


def _engagement(rule: EngagementRule, default_half_life: float | None, lists: dict[str, frozenset[str]]) -> CompiledEngagement:
    half_life_days = rule.half_life_days if rule.half_life_days is not None else default_half_life
    cap_count: int | None = None
    cap_window: float | None = None
    cap_points: float | None = None
    if rule.caps is not None:
        limits = []
        if rule.caps.max_count is not None:
            limits.append(rule.caps.max_count)
        if rule.caps.max_points is not None:
            if rule.amount is not None:  # awards vary with the amount: the points are capped, not the hits
                cap_points = float(rule.caps.max_points)
            else:
                limits.append(max(1, rule.caps.max_points // abs(rule.points)))
        cap_count = min(limits) if limits else None
        cap_window = rule.caps.window_days * DAY if rule.caps.window_days is not None else None
    return CompiledEngagement(
        id=rule.id,
        label=rule.label,
        points=rule.points,
        test=compile_condition(rule.when, lists) if rule.when is not None else None,
        half_life=half_life_days * DAY if half_life_days is not None else None,
        cap_count=cap_count,
        cap_window=cap_window,
        freq_count=rule.frequency.count if rule.frequency else None,
        freq_window=rule.frequency.within_days * DAY if rule.frequency else None,
        amount=tuple(rule.amount.property.split(".")) if rule.amount is not None else None,
        amount_per=rule.amount.per if rule.amount is not None else 1.0,
        cap_points=cap_points,
        gated=rule.frequency is not None or rule.amount is not None,
    )


def _route(route: Route, default_sla: float, lists: dict[str, frozenset[str]]) -> CompiledRoute:
    return CompiledRoute(
        name=route.name,
        channel=route.channel,
        sla_hours=route.sla_hours if route.sla_hours is not None else default_sla,
        escalation_channel=route.escalation_channel,
        test=compile_condition(route.when, lists) if route.when is not None else None,
    )


def compile_ruleset(ruleset: RuleSet, version: int | None = None) -> CompiledRuleset:
    lists = _load_lists(ruleset)
    default_half_life = ruleset.decay.half_life_days
    engagement = [_engagement(r, default_half_life, lists) for r in ruleset.engagement]
    half_lives = tuple(dict.fromkeys(r.half_life for r in engagement))
    engagement = [replace(r, group=half_lives.index(r.half_life)) for r in engagement]
    grouping = json.dumps([[r.id, r.half_life] for r in engagement])
    by_type: dict[str, list[CompiledEngagement]] = {}
    when: dict[str, list[Condition | None]] = {}
    for rule, compiled in zip(ruleset.engagement, engagement, strict=True):
        for event_type in rule.events:
            by_type.setdefault(event_type, []).append(compiled)
            when.setdefault(event_type, []).append(rule.when)
    engagement_by_type = {k: tuple(v) for k, v in by_type.items()}
    handoff = ruleset.handoff
    stages = ruleset.stages
    disqualifiers = tuple(CompiledDisqualifier(d.id, d.reason, compile_condition(d.when, lists)) for d in ruleset.disqualifiers)
    mql = compile_condition(stages.mql.when, lists)
    sql = compile_condition(stages.sql.when, lists)
    fast_track = compile_condition(stages.fast_track.when, lists) if stages.fast_track else None
    conditions: list[Condition | None] = [d.when for d in ruleset.disqualifiers]
    conditions += [stages.fast_track.when if stages.fast_track else None, stages.mql.when, stages.sql.when]
    planner = StagePlanner(disqualifiers, conditions, fast_track, mql, sql, lists)
    fit = tuple(
        CompiledFit(r.id, r.label, r.points, compile_condition(r.when, lists), _attributes_read(r.when))
        for r in ruleset.fit
    )
    return CompiledRuleset(
        version=version,
        source=ruleset,
        fit=fit,
        engagement_by_type=engagement_by_type,
        engagement_by_id={r.id: r for r in engagement},
        disqualifiers=disqualifiers,
        grades=tuple(
            (b.grade, float(b.min_fit) if b.min_fit is not None else -math.inf) for b in ruleset.grades
        ),
        hand_raisers=frozenset(stages.hand_raisers),
        mql=mql,
        sql=sql,
        fast_track=fast_track,
        sql_requires_mql=stages.sql_requires_mql,
        recycle_cooldown=stages.recycle_cooldown_days * DAY,
        routes=tuple(_route(r, handoff.sla_hours, lists) for r in handoff.routes),
        default_route=CompiledRoute("default", handoff.default_channel, handoff.sla_hours, None, None),
        mql_route=CompiledRoute("marketing", handoff.mql_channel, handoff.sla_hours, None, None),
        notify=frozenset(handoff.notify),
        lists=lists,
        half_lives=half_lives,
        decay_rates=tuple(math.log(2) / h if h is not None else 0.0 for h in half_lives),
        decay_basis=hashlib.sha256(grouping.encode()).hexdigest()[:16],
        event_types=KNOWN_TYPES | frozenset(ruleset.event_types),
        declared=declared_attributes(ruleset),
        caches=RulesetCaches(
            fit=FitMemo(fit, [r.when for r in ruleset.fit]),
            events={k: EventMemo(rules, when[k], lists) for k, rules in engagement_by_type.items()},
            planner=planner,
        ),
    )


def declared_attributes(ruleset: RuleSet) -> dict[str, Declared]:
    """The rule set's custom attribute declarations, by name after ``custom.``."""
    return {name.removeprefix("custom."): Declared(name.removeprefix("custom."), spec.type, tuple(spec.values or ()))
            for name, spec in ruleset.attributes.items()}


def event_types(ruleset: RuleSet) -> Iterable[str]:
    return sorted({t for r in ruleset.engagement for t in r.events})
