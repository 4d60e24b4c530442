# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Compare a candidate with the active rule set, then publish it
#
# Both rule sets replay the same history through the production engine. The comparison lists the
# leads that would end differently and why (the rule contributions and stage rules that differ),
# and the metrics side by side. Publishing validates again and needs `confirm = True`; without it
# the notebook only says what it would do.
#
# Target: the library's `RulesetService` (in memory) by default, or a running API (`make run`
# serves one on http://127.0.0.1:8000) when `api_url` is set, with the admin bearer token.

# %% tags=["parameters"]
n_leads = 5000  # synthetic history size (ignored when data_path is set)
seed = 7
data_path = ""  # a directory with events.parquet or .csv (+ outcomes, leads); empty: synthetic
candidate_path = ""  # the candidate rule set file, YAML or JSON; empty: the default, thresholds below
mql_engagement = 40
sql_engagement = 60
weekly_capacity = 50.0
workers = 2
api_url = ""  # e.g. http://127.0.0.1:8000; empty: publish through the in-memory RulesetService
admin_token = ""  # the admin bearer token (BATON_ADMIN_TOKEN) for api_url
confirm = False  # publish for real only when True

# %%
import json
import time
from pathlib import Path

import pandas as pd
from IPython.display import display

from baton.backtest import backtest
from baton.backtest.authoring import with_threshold
from baton.backtest.io import read_history
from baton.backtest.publish import fetch_active, fetch_shadow_comparison, publish_ruleset
from baton.metrics import compare, stage_matrix, summary
from baton.synth import generate
from chalicelib.rules import default_ruleset, load_ruleset
from chalicelib.rulesets import RulesetService
from chalicelib.store.memory import InMemoryRulesets

# %% [markdown]
# ## The active rule set and the candidate

# %%
service = None
if api_url:
    active_version, active = fetch_active(api_url, admin_token)
    print(f"active on {api_url}: version {active_version} ({active.name!r})")
else:
    service = RulesetService(InMemoryRulesets(), time.time)
    active_version, active = 0, default_ruleset()  # what the service scores with before any publish
    print("in-memory RulesetService: nothing published yet, the shipped default is active")

if candidate_path:
    candidate = load_ruleset(candidate_path)
else:
    candidate = with_threshold(with_threshold(default_ruleset(), "mql", mql_engagement), "sql", sql_engagement)
    candidate = candidate.model_copy(update={"name": f"{candidate.name}-mql{mql_engagement}-sql{sql_engagement}"})
print(f"candidate: {candidate.name!r}")

# %% [markdown]
# ## Both on the same history

# %%
if data_path:
    events, outcomes = read_history(data_path)
else:
    history = generate(n_leads, seed=seed)
    events, outcomes = history.events, history.outcomes
active_result = backtest(events, active, outcomes, workers=workers, version=active_version)
candidate_result = backtest(events, candidate, outcomes, workers=workers)
active_metrics = summary(active_result, weekly_capacity=weekly_capacity)
candidate_metrics = summary(candidate_result, weekly_capacity=weekly_capacity)


LABELS = {"lead": "leads", "mql": "MQLs", "sql": "SQLs", "opportunity": "opportunities", "won": "won deals"}


def headline(metrics: dict) -> dict:
    steps = {row["step"]: row["leads"] for row in metrics["funnel"]}
    sql, ranking = metrics["sql_quality"], metrics["quality"]
    days = metrics["time_to_stage"]["sql"]["median_days"]
    return {
        **{LABELS[step]: f"{n:,}" for step, n in steps.items()},
        "SQL precision (won)": "n/a" if sql["precision"] is None else f"{sql['precision']:.1%}",
        "SQL recall (won)": "n/a" if sql["recall"] is None else f"{sql['recall']:.1%}",
        "ROC AUC": "n/a" if ranking["auc"] is None else f"{ranking['auc']:.3f}",
        "SQLs per week": f"{metrics['sqls_per_week']:.1f}",
        "weeks over capacity": f"{sum(w['over_capacity'] for w in metrics['weekly_sqls']):,}",
        "median days to SQL": "n/a" if days is None else f"{days:.1f}",
    }


pd.DataFrame({"active": headline(active_metrics), "candidate": headline(candidate_metrics)})

# %% [markdown]
# ## Leads that end differently, and why
#
# Rows: the stage under the active rule set; columns: under the candidate.

# %%
pd.DataFrame(stage_matrix(active_result, candidate_result)).T.fillna(0).astype(int)

# %%
changed = compare(active_result, candidate_result)
shown = 25
print(f"{len(changed):,} leads (of {len(active_result):,}) end in another stage or peak in another one"
      + (f"; the first {shown} below" if len(changed) > shown else ""))
pd.DataFrame([
    {
        "email": row["email"], "active": f"{row['stage_a']} (max {row['max_stage_a']})",
        "candidate": f"{row['stage_b']} (max {row['max_stage_b']})", "won": row.get("won"),
        "why": "; ".join(
            f"{w['kind']} {w['rule']}: {w['a']} -> {w['b']}" if w["kind"] != "stage rule" else f"stage rule {w['rule']}"
            for w in row["why"]
        ),
    }
    for row in changed[:shown]
])

# %% [markdown]
# ## The pilot on live traffic (shadow)
#
# History says what the candidate *would have* done; a shadow shows what it *does*. Against a live
# API, start one with `POST /v1/rulesets/{version}/shadow`: the candidate then scores every event
# next to the active version (no alerts), and this cell reads its comparison.

# %%
live = fetch_shadow_comparison(api_url, admin_token) if api_url else None
if live is None:
    print("no shadow is running" + ("" if api_url else " (set api_url to read one from a live API)"))
else:
    print(f"shadow v{live['shadow_version']} vs active v{live['active_version']} on {live['compared']} leads; "
          f"who was right where sales decided: {live['verdict']}")
    display(pd.DataFrame(live["counts"]))
    display(pd.DataFrame(live["disagreements"][:25]))

# %% [markdown]
# ## Publish
#
# Validated again exactly as the API validates. Set `confirm = True` to create the version and make
# it active; the previous version stays available for rollback.

# %%
outcome = publish_ruleset(candidate, confirm=confirm, service=service, api_url=api_url or None,
                          admin_token=admin_token or None)
if outcome.get("published"):
    print(f"published {outcome['name']!r} as version {outcome['version']} on {outcome['target']} "
          f"(previous active: {outcome['previous']})")
elif outcome.get("valid"):
    print(f"not published (confirm is False): would {outcome['would']}")
else:
    print(f"the candidate is not valid: {outcome['error']}")

# %% [markdown]
# The last line is a machine-readable summary (the notebook tests read it).

# %%
print(json.dumps({
    "notebook": "03-compare-and-publish",
    "leads": len(active_result),
    "changed_leads": len(changed),
    "active_sqls": active_metrics["sql_quality"]["sqls"],
    "candidate_sqls": candidate_metrics["sql_quality"]["sqls"],
    "active_auc": active_metrics["quality"]["auc"],
    "candidate_auc": candidate_metrics["quality"]["auc"],
    "valid": outcome.get("valid"),
    "published": outcome.get("published"),
    "version": outcome.get("version"),
    "target": outcome.get("target"),
}))
