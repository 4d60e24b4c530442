"""A re-score that makes SQLs sends each its normal alert to its route, saying which change caused
it; the MQLs go in the digest; a large one reaches Slack at each channel's pace (fake clock)."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest

from chalicelib.bootstrap import Container, memory_container
from chalicelib.events import Event
from chalicelib.handoff.delivery import Deliverer, render
from chalicelib.outbox.relay import relay
from chalicelib.queues import InMemoryQueue

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class Slack:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.posts: list[tuple[float, str, str, list[dict[str, Any]]]] = []

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.posts.append((self.clock(), channel, text, blocks))


class NoSns:
    def publish(self, item: Any) -> None:
        pass


def _world(hot: int, warm: int, **handoff: Any) -> tuple[Container, Clock]:
    """Leads scored under a strict v1 (nobody qualifies): ``hot`` ones work at 300-person companies
    in the US, 100-person ones in Germany, or 5,000-person ones (three routes); ``warm`` ones give
    no company size. Then v2 is created (``handoff`` settings changed): any engagement makes an MQL,
    a company of 100 or more an SQL."""
    from chalicelib.rules.loader import default_ruleset

    clock = Clock()
    c = memory_container(clock=clock)
    c.extras["queue"] = InMemoryQueue()
    strict = default_ruleset().model_dump(mode="json", by_alias=True)
    strict["stages"]["mql"]["when"] = {"field": "engagement", "op": "gte", "value": 10_000}
    strict["stages"]["sql"]["when"] = {"field": "engagement", "op": "gte", "value": 10_000}
    c.rollout.publish(c.rulesets.create(strict)["version"])
    _drain(c)
    sizes = [(300, "US"), (100, "DE"), (5000, "US")]
    events = []
    for n in range(hot + warm):
        size, country = sizes[n % 3]
        traits = {"first_name": f"Lead{n}", "company": f"Co{n}", "job_title": "Engineer", "country": country,
                  **({"company_size": size} if n < hot else {})}
        events.append(Event(f"v{n}", "page_view", T0 - 3600, f"lead{n}@co{n}.example", None,
                            {"path": "/pricing"}, traits, "api"))
    c.leads.ingest(events)
    loose = dict(strict, name="loose")
    loose["stages"] = {**strict["stages"], "mql": {"when": {"field": "engagement", "op": "gte", "value": 0.1}},
                       "sql": {"when": {"field": "company_size", "op": "gte", "value": 100}}}
    loose["handoff"] = {**strict["handoff"], **handoff}
    c.extras["v2"] = c.rulesets.create(loose)["version"]
    return c, clock


def _drain(c: Container) -> None:
    queue: InMemoryQueue = c.extras["queue"]
    while (message := queue.take()) is not None:
        c.rescore.handle(message)


def _publish_v2(c: Container) -> dict[str, Any]:
    version = int(c.extras["v2"])
    c.rollout.publish(version)
    _drain(c)
    (status,) = c.rescore.status(version)
    return status


def test_a_rescore_that_makes_sqls_sends_each_its_normal_alert_and_digests_the_mqls() -> None:
    c, _ = _world(hot=6, warm=4)
    status = _publish_v2(c)
    assert (status["status"], status["transitions"], status["alerted"]) == ("complete", 10, 6)
    items = c.outbox.pending(100)
    alerts = [i for i in items if i.kind == "handoff"]
    (digest,) = [i for i in items if i.kind == "digest"]
    assert len(alerts) == 6 and {a.body["stage"] for a in alerts} == {"sql"}
    v1, v2 = int(c.extras["v2"]) - 1, int(c.extras["v2"])
    assert {json.dumps(a.body["rescore"]) for a in alerts} == {json.dumps({"from_version": v1, "to_version": v2})}
    assert {a.body["source"] for a in alerts} == {"rescore"}
    channels = {}
    for alert in alerts:
        channel, _, blocks = render(alert)
        rendered = json.dumps(blocks)
        assert f"re-scoring with rule set v{v2} (was v{v1})" in rendered
        assert "baton_accept" in rendered and "baton_reject" in rendered and "Top reasons" in rendered
        channels[alert.body["lead_id"]] = channel
    assert set(channels.values()) == {"#sales", "#sales-emea", "#sales-enterprise"}, "each to its route"
    assert digest.body["total"] == 4 and digest.body["sql_alerts"] == 6
    assert {t["stage"] for t in digest.body["transitions"]} == {"mql"} and len(digest.body["transitions"]) == 4
    assert "4 stage changes" in render(digest)[1]


@pytest.mark.parametrize(("handoff", "alerted", "stages"), [
    ({"rescore_alerts": "individual", "notify": ["sql", "mql"]}, 5, ["mql", "mql", "sql", "sql", "sql"]),
    ({"rescore_alerts": "none"}, 3, ["sql", "sql", "sql"]),
])
def test_rescore_alerts_governs_the_other_changes_never_the_sqls(
    handoff: dict[str, Any], alerted: int, stages: list[str]
) -> None:
    c, _ = _world(hot=3, warm=2, **handoff)
    assert _publish_v2(c)["alerted"] == alerted
    items = c.outbox.pending(100)
    assert {i.kind for i in items} == {"handoff"}, "no digest"
    assert sorted(i.body["stage"] for i in items) == stages


def test_a_large_rescore_reaches_slack_at_each_channels_pace_each_alert_once() -> None:
    c, clock = _world(hot=300, warm=0)
    status = _publish_v2(c)
    assert status["alerted"] == 300
    clock.t = T0
    assert relay(c.outbox, NoSns(), limit=1000, now=clock())["sent"] == 300
    slack = Slack(clock)
    deliverer = Deliverer(c.outbox, lambda: slack, InMemoryQueue(), clock=clock, sleep=clock.sleep)
    for item_id in _ids(c):  # every SNS message at once: the consumers' first attempts
        clock.t = T0
        deliverer.attempt(item_id)
    start = T0
    while len(slack.posts) < 300 and clock.t < T0 + 400:  # the delivery sweeper, every minute
        deliverer.sweep(55)
        start += 60
        clock.t = max(clock.t, start)
    posted = [json.dumps(blocks) for _, _, _, blocks in slack.posts]
    assert sorted(posted) == sorted(set(posted)) and len(posted) == 300, "each once"
    for channel in ("#sales", "#sales-emea", "#sales-enterprise"):
        times = [at for at, ch, _, _ in slack.posts if ch == channel]
        assert len(times) == 100, channel
        assert all(b - a >= 1.0 for a, b in pairwise(times)), f"{channel}: one a second"
        assert 99 <= times[-1] - times[0] <= 99 * 60 / 55 + 1, f"{channel}: paced, not held back"


def _ids(c: Container) -> list[str]:
    return [item_id for _, item_id in c.outbox.due(float("inf"), limit=10_000)]
