"""The score chart (inline SVG) and the series it draws, read back as XML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.events import Event
from chalicelib.leadpage.chart import HEIGHT, WIDTH, Mark, score_chart
from chalicelib.leadpage.history import Point, engagement_thresholds, score_series
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import default_ruleset

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_700_000_000.0
DAY = 86400.0


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _coords(line: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in line.attrib["points"].split())]


def _lines(root: ET.Element) -> dict[str, list[tuple[float, float]]]:
    return {el.attrib["data-series"]: _coords(el) for el in root.iter(f"{SVG}polyline")}


def test_two_lines_the_thresholds_and_a_mark_per_transition() -> None:
    points = [Point(T0, 0, 0), Point(T0, 70, 40), Point(T0 + DAY, 70, 20), Point(T0 + DAY, 70, 90),
              Point(T0 + 2 * DAY, 70, 80)]
    marks = [Mark(T0, "mql", "fit A, engagement 40"), Mark(T0 + DAY, "sql", "hand-raiser: Demo request")]
    root = _parse(score_chart(points, marks, {"MQL": 30, "SQL": 60}))
    assert root.find(f"{SVG}title").text == "Score over time"  # type: ignore[union-attr]
    lines = _lines(root)
    assert set(lines) == {"fit", "engagement"} and all(len(c) == len(points) for c in lines.values())
    assert lines["fit"][0] == (48.0, lines["engagement"][0][1]), "both start at the left edge, at zero"
    xs = [x for x, _ in lines["engagement"]]
    assert xs == sorted(xs), "time runs left to right"
    ys = [y for _, y in lines["engagement"]]
    assert ys[3] < ys[4] < ys[1] < ys[2], "more points are drawn higher"
    thresholds = {g.attrib["data-stage"]: g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "threshold"}
    assert set(thresholds) == {"mql", "sql"}
    y_of = {k: float(g.find(f"{SVG}line").attrib["y1"]) for k, g in thresholds.items()}  # type: ignore[union-attr]
    assert y_of["sql"] < y_of["mql"]
    assert [t.text for t in thresholds["sql"].iter(f"{SVG}text")] == ["SQL \u2265 60"]
    transitions = [g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "transition"]
    assert [g.attrib["data-stage"] for g in transitions] == ["mql", "sql"]
    assert "hand-raiser: Demo request" in (transitions[1].find(f"{SVG}title").text or "")  # type: ignore[union-attr]


def test_lead_data_in_the_chart_is_text_never_markup() -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    svg = score_chart([Point(T0, 1, 1)], [Mark(T0, "sql", evil)], {evil: 5})
    root = _parse(svg)  # still well-formed
    assert not [el for el in root.iter() if el.tag.split("}")[-1] in ("script", "img", "foreignObject")]
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_a_new_lead_is_drawn_over_the_last_hour_flat_before_its_first_event() -> None:
    points = [Point(T0, 0, 0), Point(T0, 75, 40), Point(T0 + 5, 75, 40)]
    lines = _lines(_parse(score_chart(points, [Mark(T0, "sql", "hand-raiser")])))
    (x0, y0), (x1, y1), *_, (xn, _) = lines["engagement"]
    assert x0 == 48.0 and y0 == y1 and x1 > 600, "held at zero from the hour's start to the event, near now"
    assert xn == 760 - 84, "now is the right edge"


def test_no_activity_is_said_not_drawn() -> None:
    root = _parse(score_chart([]))
    assert not list(root.iter(f"{SVG}polyline"))
    assert "No activity yet" in "".join(root.itertext())


finite = st.floats(min_value=-500, max_value=500, allow_nan=False)


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=400 * DAY), finite, finite), min_size=1, max_size=40),
       st.dictionaries(st.sampled_from(["MQL", "SQL"]), st.floats(min_value=-100, max_value=300)))
def test_any_series_is_drawn_inside_the_picture(raw: list[tuple[float, float, float]],
                                                thresholds: dict[str, float]) -> None:
    points = [Point(T0 + t, fit, engagement) for t, fit, engagement in sorted(raw)]
    root = _parse(score_chart(points, [Mark(points[0].at, "mql", "r")], thresholds))
    for coords in _lines(root).values():
        for x, y in coords:
            assert math.isfinite(x) and math.isfinite(y)
            assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT


# -- the series: the lead's history replayed ------------------------------------------------------

RS = compile_ruleset(default_ruleset(), version=0)
CTO = {"first_name": "Grace", "job_title": "CTO", "company_size": 500}


def test_the_series_jumps_at_each_event_and_decays_between() -> None:
    events = [Event("e1", "page_view", T0, "g@acme.example", None, {"path": "/pricing"}, CTO, "web"),
              Event("e2", "demo_request", T0 + 10 * DAY, "g@acme.example", None, {"form_id": "demo"}, CTO, "form")]
    points = score_series("L1", "g@acme.example", events, [], RS, T0 + 20 * DAY)
    times = [p.at for p in points]
    assert times == sorted(times) and times[0] == T0 and times[-1] == T0 + 20 * DAY
    at_demo = [p for p in points if p.at == T0 + 10 * DAY]
    assert len(at_demo) == 2 and at_demo[1].engagement > at_demo[0].engagement, "a jump drawn as one"
    between = [p.engagement for p in points if T0 < p.at < T0 + 10 * DAY]
    assert len(between) > 10 and between == sorted(between, reverse=True), "decay between events"
    assert points[-1].fit > 0


def test_the_default_rules_draw_mql_at_30_and_sql_at_60() -> None:
    assert engagement_thresholds(RS) == {"MQL": 30.0, "SQL": 60.0}
