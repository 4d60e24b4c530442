"""A realistic, seeded synthetic history: leads, what they did, and what sales made of them.

``generate(n_leads, seed=7)`` returns the same ``History`` for the same arguments on any machine
(``random.Random(seed)``, no global state, no clock). It models a B2B SaaS funnel:

- personas with a fit profile (title, seniority, department, company size, industry, country,
  email kind) and an intent level: ideal buyers, managers, enterprise evaluators, practitioners,
  small-business owners, out-of-market leads, and noise: students (.edu / .ac.*), job seekers
  (careers pages, "Looking for opportunities"), competitors (the default rule set's competitor
  domains) and disposable addresses (mailinator.com & co);
- first-touch channels (``utm_source/utm_medium``): google/cpc, linkedin/paid, newsletter/email,
  google/organic, g2/referral, weighted per persona;
- offers: the default rule set's forms (ebook-lead-scoring, webinar-registration, newsletter, trial,
  demo, contact-sales), webinar attendance, email opens and clicks, sessions of page views
  (pricing, product, integrations, blog, careers) over weeks;
- identity: about a third of leads browse anonymously first and are linked by an identify call;
  a few visitors never identify; about 0.5 % of events are redelivered (duplicates);
- 5-15 % of leads are sales-ready hand-raisers (demo, contact sales, meeting); outcomes
  (accepted, rejected, opportunity, won, lost, recycled, disqualified) follow fit and intent, and a
  few deals come from sales outreach to leads who never raised a hand.

Times are epoch seconds rounded to the millisecond (exact through every file format here).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from baton.backtest.replay import paused_gc
from chalicelib.events import Event
from chalicelib.rules.loader import default_ruleset
from chalicelib.timeline import Outcome

DAY = 86400.0
DEFAULT_START = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()  # a Monday
HAND_RAISERS = frozenset({"demo_request", "contact_sales", "meeting_booked"})

CHANNELS: tuple[tuple[str, str], ...] = (
    ("google", "cpc"), ("linkedin", "paid"), ("newsletter", "email"), ("google", "organic"), ("g2", "referral"),
)
FIRST_NAMES = (
    "ada", "alan", "ana", "ben", "carla", "chen", "dan", "elena", "emma", "felix", "grace", "hana", "ivan", "jade",
    "jon", "kai", "lara", "leo", "maria", "mia", "noah", "nora", "omar", "paul", "priya", "quinn", "raj", "rosa",
    "sam", "sara", "tom", "uma", "victor", "wei", "yara", "zoe",
)
LAST_NAMES = (
    "adams", "baker", "costa", "dubois", "evans", "fischer", "garcia", "hughes", "ito", "jensen", "khan", "lopez",
    "muller", "nakamura", "olsen", "patel", "quinn", "rossi", "smith", "tanaka", "usman", "vargas", "weber",
    "xu", "young", "zhang",
)
WORDS = (
    "acme", "blue", "bright", "cloud", "core", "data", "delta", "edge", "flow", "forge", "grid", "harbor", "iron",
    "jet", "kite", "lumen", "maple", "nova", "orbit", "pixel", "quant", "river", "summit", "terra", "vector",
    "wave", "zen",
)
SUFFIXES = ("labs", "soft", "works", "hq", "ly", "io", "group", "systems", "tech", "hub")
TARGET_INDUSTRIES = ("software", "saas", "fintech", "e-commerce", "healthcare tech")
OTHER_INDUSTRIES = ("manufacturing", "education", "government", "logistics", "media", "construction")
COVERED = ("us", "united states", "canada", "uk", "germany", "france", "netherlands")
UNCOVERED = ("india", "brazil", "japan", "mexico", "nigeria", "indonesia")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
DISPOSABLE = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "sharklasers.com")
UNIVERSITIES = ("stateu.edu", "techinstitute.edu", "cs.ox.ac.uk", "uni-example.ac.jp")

PRODUCT_PAGES = ("/product/scoring", "/product/routing", "/product/analytics", "/integrations/hubspot",
                 "/integrations/salesforce", "/integrations/slack")
BLOG_PAGES = tuple(f"/blog/{slug}" for slug in (
    "what-is-an-mql", "lead-scoring-101", "sales-handoff-sla", "bant-vs-gpct", "intent-data", "funnel-metrics",
    "nurture-campaigns", "closed-loop-reporting"))
CAREERS_PAGES = ("/careers", "/careers/sdr", "/careers/engineer", "/jobs")
LANDING_PAGES = ("/", "/pricing", "/product/scoring", "/blog/lead-scoring-101", "/lp/lead-scoring-guide")
CAMPAIGNS = tuple(f"newsletter-2026-{m:02d}" for m in range(1, 13))


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    titles: tuple[str, ...]
    departments: tuple[str, ...]
    sizes: tuple[int, int]
    email: str  # corporate | free | edu | competitor | disposable
    market: str  # target | any | outside
    activity: float  # relative number of events
    hand_raise: float  # probability of being a sales-ready hand-raiser
    quality: float  # 0..1: how good a customer (acceptance, win rates)
    win: float  # win probability of a deal that reaches opportunity
    # page mix: pricing, product, blog, careers, home
    pages: tuple[float, float, float, float, float]
    channels: tuple[float, float, float, float, float]
    noise: str | None = None  # reason sales would disqualify


PERSONAS: tuple[Persona, ...] = (
    Persona("champion", 0.13, ("VP Marketing", "Chief Revenue Officer", "VP Sales", "Founder & CEO", "CMO"),
            ("marketing", "sales", "revenue operations"), (50, 900), "corporate", "target", 1.2, 0.36, 0.9, 0.5,
            (0.30, 0.30, 0.25, 0.0, 0.15), (25, 30, 10, 20, 15)),
    Persona("manager", 0.21, ("Marketing Manager", "Head of Growth", "Director of Sales", "Sales Ops Lead",
                              "Demand Generation Manager"),
            ("marketing", "sales", "growth", "operations"), (50, 900), "corporate", "any", 1.1, 0.12, 0.7, 0.4,
            (0.20, 0.30, 0.40, 0.0, 0.10), (25, 25, 15, 25, 10)),
    Persona("enterprise", 0.08, ("Director of Marketing Operations", "Head of Revenue Operations",
                                 "IT Manager", "Sales Director"),
            ("marketing", "revenue operations", "it"), (1000, 20000), "corporate", "target", 1.0, 0.12, 0.75, 0.35,
            (0.25, 0.35, 0.25, 0.0, 0.15), (20, 35, 10, 25, 10)),
    Persona("practitioner", 0.22, ("Marketing Specialist", "Sales Representative", "Analyst", "Content Writer",
                                   "Account Executive", "Engineer"),
            ("marketing", "sales", "engineering", "finance"), (10, 5000), "corporate", "any", 0.9, 0.03, 0.3, 0.15,
            (0.08, 0.22, 0.60, 0.0, 0.10), (20, 15, 20, 35, 10)),
    Persona("smb-owner", 0.09, ("Owner", "Founder", "Freelancer"), ("", "management"), (1, 9), "free", "any",
            0.8, 0.08, 0.3, 0.2, (0.25, 0.25, 0.35, 0.0, 0.15), (35, 10, 10, 35, 10)),
    Persona("out-of-market", 0.09, ("Marketing Manager", "Head of Sales", "Consultant", "Business Analyst"),
            ("marketing", "sales", "consulting"), (20, 2000), "corporate", "outside", 0.9, 0.06, 0.35, 0.15,
            (0.15, 0.30, 0.45, 0.0, 0.10), (30, 15, 10, 35, 10)),
    Persona("student", 0.05, ("Student", "MBA Student", "Marketing Intern", "PhD Candidate"), ("",),
            (1, 1), "edu", "any", 0.7, 0.01, 0.0, 0.0, (0.05, 0.15, 0.75, 0.0, 0.05), (10, 5, 5, 70, 10),
            noise="student"),
    Persona("job-seeker", 0.05, ("Looking for opportunities", "Looking for a job", "Job seeker"), ("",),
            (1, 1), "free", "any", 0.7, 0.005, 0.0, 0.0, (0.02, 0.08, 0.20, 0.60, 0.10), (5, 20, 0, 70, 5),
            noise="job seeker"),
    Persona("competitor", 0.03, ("Product Marketing Manager", "Competitive Intelligence Analyst"),
            ("marketing", "product"), (50, 500), "competitor", "target", 1.0, 0.15, 0.0, 0.0,
            (0.45, 0.40, 0.10, 0.0, 0.05), (30, 10, 10, 40, 10), noise="competitor"),
    Persona("disposable", 0.05, ("", "Manager", "CEO"), ("",), (1, 50), "disposable", "any", 0.5, 0.05, 0.0, 0.0,
            (0.30, 0.30, 0.30, 0.0, 0.10), (40, 10, 5, 35, 10), noise="fake data"),
)


@dataclass
class History:
    """Events (sorted by time) and sales outcomes of a synthetic funnel, plus what generated them."""

    events: list[Event]
    outcomes: list[Outcome]
    start: float
    end: float
    leads: int
    seed: int
    personas: dict[str, str] = field(default_factory=dict, repr=False)  # email -> persona name

    def info(self) -> dict[str, Any]:
        return {"events": len(self.events), "outcomes": len(self.outcomes), "leads": self.leads, "seed": self.seed,
                "start": self.start, "end": self.end}


@dataclass(frozen=True)
class _Company:
    name: str
    domain: str
    size: int
    industry: str
    country: str


def _companies(r: random.Random, count: int, outside: bool) -> list[_Company]:
    out = []
    for i in range(count):
        name = f"{r.choice(WORDS)}{r.choice(SUFFIXES)}"
        domain = f"{name}{i}.{'com' if r.random() < 0.7 else 'io'}"
        industry = r.choice(TARGET_INDUSTRIES) if r.random() < 0.6 else r.choice(OTHER_INDUSTRIES)
        country = r.choice(UNCOVERED if outside else COVERED)
        out.append(_Company(name.title(), domain, 0, industry, country))
    return out


def _budgets(r: random.Random, weights: Sequence[float], total: int, minimum: int) -> list[int]:
    """Split ``total`` events into per-lead counts proportional to ``weights`` (exactly, when possible)."""
    scale = total / sum(weights)
    counts = [max(minimum, int(w * scale)) for w in weights]
    diff = total - sum(counts)
    n = len(counts)
    while diff > 0:
        counts[r.randrange(n)] += 1
        diff -= 1
    guard = 0
    while diff < 0 and guard < 50 * n:
        i = r.randrange(n)
        guard += 1
        if counts[i] > minimum:
            counts[i] -= 1
            diff += 1
    return counts


class _Builder:
    """Per-lead story generation; emits plain tuples, turned into Events once, after sorting."""

    def __init__(self, r: random.Random, seed: int, start: float, end: float) -> None:
        self.r = r
        self.start, self.end = start, end
        self.prefix = f"s{seed}-"
        self.rows: list[tuple[Any, ...]] = []
        self.page_props = {p: {"path": p} for p in (*PRODUCT_PAGES, *BLOG_PAGES, *CAREERS_PAGES, "/pricing", "/")}
        self.mail_props = {c: {"campaign": c} for c in CAMPAIGNS}
        ruleset = default_ruleset()
        self.competitors = tuple(ruleset.lists.get("competitors") or ("rivalscore.io",))

    def page(self, mix: Sequence[float]) -> str:
        """A path drawn from (pricing, product, blog, careers) shares; the rest is the home page."""
        x = self.r.random()
        if x < mix[0]:
            return "/pricing"
        x -= mix[0]
        if x < mix[1]:
            return self.r.choice(PRODUCT_PAGES)
        x -= mix[1]
        if x < mix[2]:
            return self.r.choice(BLOG_PAGES)
        x -= mix[2]
        if x < mix[3]:
            return self.r.choice(CAREERS_PAGES)
        return "/"


def _time(t: float, end: float) -> float:
    return round(min(t, end), 3)


def generate(
    n_leads: int,
    seed: int = 7,
    days: float = 180,
    *,
    events_per_lead: float = 20.0,
    n_events: int | None = None,
    start: float = DEFAULT_START,
    anonymous_share: float = 0.35,
    duplicate_share: float = 0.005,
    visitor_share: float = 0.02,
) -> History:
    """A history of ``n_leads`` leads and ``n_events`` events (default ``n_leads * events_per_lead``).

    ``anonymous_share`` of leads browse anonymously before identifying; ``visitor_share`` of the
    events come from visitors who never identify; ``duplicate_share`` of events are redelivered.
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    with paused_gc():
        return _generate(n_leads, seed, days, events_per_lead, n_events, start, anonymous_share, duplicate_share,
                         visitor_share)


def _generate(n_leads: int, seed: int, days: float, events_per_lead: float, n_events: int | None, start: float,
              anonymous_share: float, duplicate_share: float, visitor_share: float) -> History:
    r = random.Random(seed)
    end = start + days * DAY
    total = n_events if n_events is not None else round(n_leads * events_per_lead)
    visitor_events = int(total * visitor_share)
    lead_events = max(total - visitor_events, 2 * n_leads)
    b = _Builder(r, seed, start, end)
    companies = {
        "target": _companies(r, max(8, n_leads // 6), False),
        "outside": _companies(r, max(4, n_leads // 30), True),
    }
    persona_weights = [p.weight for p in PERSONAS]
    chosen = r.choices(PERSONAS, weights=persona_weights, k=n_leads)
    weights = [p.activity * r.lognormvariate(0.0, 1.2) for p in chosen]
    budgets = _budgets(r, weights, lead_events, 2)
    outcomes: list[Outcome] = []
    personas: dict[str, str] = {}
    for index, (persona, budget) in enumerate(zip(chosen, budgets, strict=True)):
        email = _lead(b, index, persona, budget, companies, duplicate_share, anonymous_share, outcomes)
        personas[email] = persona.name
    _visitors(b, visitor_events)
    rows = b.rows
    rows.sort(key=itemgetter(0))  # stable: same-time events keep generation order
    events = [Event(row[1], row[2], row[0], row[3], row[4], row[5], row[6], row[7]) for row in rows]
    outcomes.sort(key=lambda o: o.ts)
    return History(events, outcomes, start, end, n_leads, seed, personas)


def _email_for(b: _Builder, index: int, persona: Persona, first: str, last: str, company: _Company) -> str:
    r = b.r
    tag = f"{index:x}"
    kind = persona.email
    if kind == "corporate":
        return f"{first}.{last}.{tag}@{company.domain}"
    if kind == "free":
        return f"{first}{last}{tag}@{r.choice(FREE_MAIL)}"
    if kind == "edu":
        return f"{first}.{last}.{tag}@{r.choice(UNIVERSITIES)}"
    if kind == "competitor":
        return f"{first}.{tag}@{r.choice(b.competitors)}"
    return f"{first}{tag}@{r.choice(DISPOSABLE)}"


def _traits(b: _Builder, persona: Persona, first: str, last: str, company: _Company,
            channel: tuple[str, str]) -> dict[str, Any]:
    r = b.r
    lo, hi = persona.sizes
    size = int(math.exp(r.uniform(math.log(lo), math.log(hi + 1)))) if hi > lo else lo
    traits: dict[str, Any] = {"first_name": first.title(), "utm_source": channel[0], "utm_medium": channel[1]}
    if persona.email == "disposable" and r.random() < 0.6:
        return traits  # fake sign-ups leave little behind
    traits["last_name"] = last.title()
    title = r.choice(persona.titles)
    if title:
        traits["job_title"] = title
    if persona.email not in ("edu",) and persona.noise != "job seeker":
        traits["company"] = company.name
        traits["company_size"] = size
        traits["industry"] = company.industry if persona.market != "target" or r.random() < 0.3 else r.choice(
            TARGET_INDUSTRIES)
        traits["country"] = company.country
    department = r.choice(persona.departments)
    if department:
        traits["department"] = department
    if persona.noise == "job seeker" and r.random() < 0.4:
        traits["inquiry_type"] = "careers"
    return traits


def _lead(
    b: _Builder, index: int, persona: Persona, budget: int, companies: dict[str, list[_Company]],
    duplicate_share: float, anonymous_share: float, outcomes: list[Outcome],
) -> str:
    r = b.r
    rows = b.rows
    end = b.end
    rnd = r.random
    first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
    company = r.choice(companies["outside" if persona.market == "outside" else "target"])
    email = _email_for(b, index, persona, first, last, company)
    channel = r.choices(CHANNELS, weights=persona.channels)[0]
    traits = _traits(b, persona, first, last, company, channel)
    eid = f"{b.prefix}{index:x}-"
    n = 0  # events emitted

    def emit(ts: float, typ: str, props: dict[str, Any], source: str, *, anonymous: str | None = None,
             with_email: bool = True, lead_traits: dict[str, Any] | None = None) -> None:
        nonlocal n
        row = (_time(ts, end), f"{eid}{n}", typ, email if with_email else None, anonymous, props,
               lead_traits if lead_traits is not None else {}, source)
        rows.append(row)
        n += 1
        if rnd() < duplicate_share and n < budget:
            rows.append(row)  # a redelivery: same id, same time
            n += 1

    intent = rnd() ** 1.5  # most leads browse; a few are in buying mode
    t0 = b.start + rnd() * (end - b.start) * 0.9
    active = min(end - t0, max(DAY, r.expovariate(1.0 / (35 * DAY))))
    first_props: dict[str, Any] = {"utm_source": channel[0], "utm_medium": channel[1],
                                   "utm_campaign": f"{channel[0]}-{channel[1]}-2026"}
    anonymous: str | None = None
    t = t0
    # 1. first touch: anonymous browsing then an identify, or straight into a form
    if budget >= 3 and rnd() < anonymous_share:
        anonymous = f"a{b.prefix}{index:x}"
        views = min(r.randint(1, 3), budget - 2)
        for v in range(views):
            path = r.choice(LANDING_PAGES)
            props = {"path": path, **first_props} if v == 0 else b.page_props.get(path) or {"path": path}
            emit(t, "page_view", props, "segment", anonymous=anonymous, with_email=False)
            t += r.uniform(20, 300)
        if rnd() < 0.5:
            emit(t, "identify", {}, "segment", anonymous=anonymous, lead_traits=traits)
        else:
            form = r.choice(("newsletter", "ebook-lead-scoring", "webinar-registration"))
            emit(t, _FORM_EVENTS[form], {"form_id": form, "offer": form, "path": f"/lp/{form}"}, "forms",
                 anonymous=anonymous, lead_traits=traits)
    else:
        form = r.choices(("newsletter", "ebook-lead-scoring", "webinar-registration", "trial"),
                         weights=(35, 35, 20, 10))[0]
        emit(t, _FORM_EVENTS[form], {"form_id": form, "offer": form, "path": f"/lp/{form}", **first_props},
             "forms", lead_traits=traits)
    identified_at = t
    # 2. the hand-raise, if this lead is sales-ready
    hand_raised_at: float | None = None
    left = budget - n
    if rnd() < persona.hand_raise * (0.4 + 1.5 * intent) and left >= 1:
        span = active * (r.uniform(0.02, 0.5) if persona.name == "champion" else r.uniform(0.2, 1.0))
        hand_raised_at = th = identified_at + max(600.0, span)
        if left >= 3:
            emit(th - r.uniform(60, 600), "page_view", b.page_props["/pricing"], "segment",
                 anonymous=anonymous if anonymous and rnd() < 0.5 else None,
                 with_email=not anonymous or rnd() < 0.5)
        form = "demo" if rnd() < 0.65 else "contact-sales"
        emit(th, _FORM_EVENTS[form], {"form_id": form, "offer": form, "path": f"/{form}"}, "forms",
             lead_traits=traits if rnd() < 0.5 else None)
        if budget - n >= 1 and rnd() < 0.45:
            emit(th + r.uniform(0.2, 3) * DAY, "meeting_booked", {"event_type": "Intro call"}, "calendly")
            if budget - n >= 1 and rnd() < 0.1:
                emit(th + r.uniform(3, 5) * DAY, "meeting_canceled", {"event_type": "Intro call"}, "calendly")
    # 3. the rest: sessions of page views, emails, content
    left = budget - n
    if left > 0:
        sessions = max(1, math.ceil(left / 3))
        starts = sorted(identified_at + 60 + rnd() * active for _ in range(sessions))
        pricing, product, blog, careers, home = persona.pages
        pricing *= 0.3 + 1.5 * intent
        norm = pricing + product + blog + careers + home
        pages = (pricing / norm, product / norm, blog / norm, careers / norm)
        j = 0
        while n < budget:
            st = starts[j % sessions] + (j // sessions) * r.uniform(30, 240)
            j += 1
            x = rnd()
            if x < 0.64:
                path = b.page(pages)
                tracked_anonymously = anonymous is not None and rnd() < 0.5
                emit(st, "page_view", b.page_props[path], "segment",
                     anonymous=anonymous if tracked_anonymously else None, with_email=not tracked_anonymously)
            elif x < 0.86:
                emit(st, "email_open", b.mail_props[r.choice(CAMPAIGNS)], "sendgrid")
            elif x < 0.935:
                emit(st, "email_click", b.mail_props[r.choice(CAMPAIGNS)], "sendgrid")
            elif x < 0.95:
                emit(st, "content_download", {"form_id": "ebook-lead-scoring", "offer": "ebook-lead-scoring"},
                     "forms")
            elif x < 0.96:
                emit(st, "webinar_registered", {"form_id": "webinar-registration", "offer": "webinar-registration"},
                     "forms")
            elif x < 0.968:
                emit(st, "webinar_attended", {"offer": "webinar-registration", "webinar": "scoring-live"}, "zoom")
            elif x < 0.972:
                emit(st, "trial_signup", {"form_id": "trial", "offer": "trial"}, "forms")
            elif x < 0.985:
                emit(st, "unsubscribe", {"campaign": r.choice(CAMPAIGNS)}, "sendgrid")
            elif x < 0.995:
                emit(st, "email_bounce", {}, "sendgrid")
            else:
                emit(st, "spam_report", {}, "sendgrid")
    _outcomes(b, persona, email, intent, hand_raised_at, identified_at + active, budget, outcomes)
    return email


_FORM_EVENTS = {name: form.event for name, form in default_ruleset().forms.items()}

_REJECT = ("no budget", "bad timing", "not the decision maker", "no need")
_LOST = ("chose a competitor", "no decision", "price")


def _outcomes(b: _Builder, persona: Persona, email: str, intent: float, hand_raised_at: float | None, last: float,
              budget: int, out: list[Outcome]) -> None:
    r = b.r
    end = b.end

    def add(outcome: str, ts: float, reason: str | None = None) -> bool:
        if ts > end:
            return False  # still open when the history ends
        out.append(Outcome(outcome, round(ts, 3), email=email, reason=reason))
        return True

    if hand_raised_at is not None:
        t = hand_raised_at + r.uniform(0.05, 2) * DAY
        if persona.noise:
            add("disqualified", t, persona.noise)
            return
        if r.random() > 0.55 + 0.4 * persona.quality:
            add("rejected", t, r.choice(_REJECT))
            return
        if not add("accepted", t):
            return
    elif persona.noise is None and budget >= 6 and r.random() < 0.04 * persona.quality * (0.5 + intent):
        t = last + r.uniform(1, 10) * DAY  # sales outreach to an engaged lead who never raised a hand
        intent *= 0.7
    else:
        return
    t += r.uniform(3, 14) * DAY
    if r.random() > 0.6 + 0.3 * intent:
        add("recycled", t, "not now")
        return
    if not add("opportunity", t):
        return
    t += r.uniform(14, 60) * DAY
    if r.random() < persona.win * (0.5 + intent):
        add("won", t)
    else:
        add("lost", t, r.choice(_LOST))


def _visitors(b: _Builder, budget: int) -> None:
    """Visitors who never leave an identity: their events count for nobody."""
    r = b.r
    i = 0
    while budget > 0:
        anonymous = f"v{b.prefix}{i:x}"
        t = b.start + r.random() * (b.end - b.start)
        for k in range(min(budget, r.randint(1, 5))):
            path = b.page((0.2, 0.3, 0.4, 0.05, 0.05))
            b.rows.append((_time(t, b.end), f"{anonymous}-{k}", "page_view", None, anonymous, b.page_props[path], {},
                           "segment"))
            t += r.uniform(20, 300)
            budget -= 1
        i += 1


# -- a history with planted, known weights (what ``baton rules suggest`` must recover) -----------------

# Log-odds of winning each planted signal adds, on top of PLANTED_BASE. Every signal is drawn
# independently of the others; industry, page views and email opens are drawn too and weigh nothing.
PLANTED_BASE = -1.5
PLANTED_WEIGHTS: dict[str, float] = {
    "lead_source is partner": 2.0,  # 20 % of leads
    "company_size 200 or more": 1.2,  # about 40 % (log-normal sizes around 120)
    "attended a webinar": 0.6,  # 30 %
    "country outside the covered markets": -0.8,  # 30 %: india, brazil, japan, mexico, nigeria, indonesia
    "unsubscribed": -1.6,  # 15 %
}
# With ``planted_history(site_time=True)``: each lead also spends time on site (1-4 ``site_visit_time``
# events carrying ``seconds``, a log-normal total around 5 minutes), and this many log-odds go to
# the leads whose total reaches PLANTED_SITE_SECONDS (about 25 % of them): an amount signal.
PLANTED_SITE_TIME = 1.0
PLANTED_SITE_SECONDS = 600.0
PLANTED_SOURCES = ("partner", "ads", "organic", "event")
PLANTED_INDUSTRIES = ("software", "retail", "finance", "health", "education")


def planted_signals(traits: dict[str, Any], types: set[str]) -> dict[str, bool]:
    """Which planted signals hold for a lead with these attributes and event types."""
    return {
        "lead_source is partner": traits.get("lead_source") == "partner",
        "company_size 200 or more": int(traits.get("company_size") or 0) >= 200,
        "attended a webinar": "webinar_attended" in types,
        "country outside the covered markets": traits.get("country") in UNCOVERED,
        "unsubscribed": "unsubscribe" in types,
    }


def planted_history(n_leads: int, seed: int = 7, *, events_per_lead: float = 8.0, days: float = 180,
                    start: float = DEFAULT_START, site_time: bool = False) -> History:
    """``n_leads`` leads created evenly over ``days``, each with an identify (lead source, company
    size, country, industry), page views and email opens (no weight), the planted events, and a
    won or lost outcome 21 days after creation drawn from the logistic model of PLANTED_WEIGHTS.
    About ``events_per_lead`` events a lead (page views make up the rest). ``site_time`` adds time
    on site and its weight (PLANTED_SITE_TIME); without it the draws are those of earlier versions."""
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    r = random.Random(seed)
    events: list[Event] = []
    outcomes: list[Outcome] = []
    page_views = max(events_per_lead - 1 - 2.0 - 0.3 - 0.15, 0.0)
    with paused_gc():
        for i in range(n_leads):
            created = round(start + days * DAY * i / n_leads, 3)
            email = f"lead{i}@{r.choice(WORDS)}{i % 97}.example"
            traits = {
                "lead_source": r.choices(PLANTED_SOURCES, weights=(20, 35, 30, 15))[0],
                "company_size": max(1, int(r.lognormvariate(math.log(120), 1.2))),
                "country": r.choice(UNCOVERED) if r.random() < 0.3 else r.choice(COVERED),
                "industry": r.choice(PLANTED_INDUSTRIES),
            }
            lead_events = [Event(f"p{seed}-{i}-id", "identify", created, email, None, {}, traits, "synth")]
            kinds = ["page_view"] * _poisson(r, page_views) + ["email_open"] * _poisson(r, 2.0)
            if r.random() < 0.3:
                kinds.append("webinar_attended")
            if r.random() < 0.15:
                kinds.append("unsubscribe")
            for n, kind in enumerate(kinds):
                ts = round(created + 60 + r.random() * 14 * DAY, 3)
                lead_events.append(Event(f"p{seed}-{i}-{n}", kind, ts, email, None, {}, {}, "synth"))
            signals = planted_signals(traits, set(kinds))
            log_odds = PLANTED_BASE + sum(PLANTED_WEIGHTS[k] for k, on in signals.items() if on)
            if site_time:
                visits = r.randint(1, 4)
                each = round(r.lognormvariate(math.log(300), 1.0) / visits, 1)
                for n in range(visits):
                    ts = round(created + 60 + r.random() * 14 * DAY, 3)
                    lead_events.append(Event(f"p{seed}-{i}-s{n}", "site_visit_time", ts, email, None,
                                             {"seconds": each}, {}, "synth"))
                if each * visits >= PLANTED_SITE_SECONDS:
                    log_odds += PLANTED_SITE_TIME
            won = r.random() < 1 / (1 + math.exp(-log_odds))
            outcomes.append(Outcome("won" if won else "lost", round(created + 21 * DAY, 3), email=email))
            events += lead_events
        events.sort(key=lambda e: e.ts)
    return History(events, sorted(outcomes, key=lambda o: o.ts), start, start + (days + 21) * DAY, n_leads, seed)


def _poisson(r: random.Random, mean: float) -> int:
    """Knuth's method (means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, r.random()
    while p > limit:
        k += 1
        p *= r.random()
    return k
