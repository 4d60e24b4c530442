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
# # 2. Backtest a rule set on history
#
# Replay a history of events and sales outcomes through **the production engine** (the same
# `apply_event` the Lambda runs) under a rule set, then read the closed-loop metrics the SLA review
# asks for: the funnel, how well "became an SQL" predicts a won deal, lift by score decile,
# conversion per channel and per offer, speed, and the sales workload against capacity, with a
# threshold sweep that recommends the lowest threshold sales can handle.
#
# History: a directory written by `baton export` (or in the layouts of `docs/backtest-data.md`), or
# a seeded synthetic one.

# %% tags=["parameters"]
n_leads = 5000  # synthetic history size (ignored when data_path is set)
seed = 7
days = 180
data_path = ""  # a directory with events.parquet or .csv (+ outcomes, leads); empty: synthetic
ruleset_path = ""  # a rule set file, YAML or JSON; empty: the default rule set
weekly_capacity = 50.0  # SQLs per week the sales team can work
workers = 2

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt

from baton.backtest import backtest
from baton.backtest.io import read_history
from baton.metrics import summary, to_frame
from baton.synth import generate
from chalicelib.rules import default_ruleset, load_ruleset

# %matplotlib inline

# %% [markdown]
# ## History and rule set

# %%
if data_path:
    events, outcomes = read_history(data_path)
    source = data_path
else:
    history = generate(n_leads, seed=seed, days=days)
    events, outcomes = history.events, history.outcomes
    source = f"synthetic (n_leads={n_leads}, seed={seed}, days={days})"
ruleset = load_ruleset(ruleset_path) if ruleset_path else default_ruleset()
print(f"history: {source}: {len(events):,} events, {len(outcomes):,} outcomes; rule set {ruleset.name!r}")

# %% [markdown]
# ## Replay

# %%
started = time.perf_counter()
result = backtest(events, ruleset, outcomes, workers=workers)
metrics = summary(result, weekly_capacity=weekly_capacity, points=50)
seconds = time.perf_counter() - started
print(json.dumps(metrics["info"], indent=1))
print(f"backtest + metrics: {seconds:.2f} s")

# %%
to_frame(metrics["funnel"])

# %%
print(json.dumps({"sql_quality": metrics["sql_quality"], "time_to_stage": metrics["time_to_stage"],
                  "sqls_per_week": metrics["sqls_per_week"]}, indent=1))

# %% [markdown]
# ## Score distribution by outcome
#
# A useful score separates the deals that were won from the rest. Score = the lead's highest
# `fit + engagement` over the history.

# %%
leads = result.to_frame()
leads["result"] = leads["outcome"].fillna("no outcome").where(~leads["won"], "won")
fig, ax = plt.subplots(figsize=(9, 4))
groups = ["won", "lost", "opportunity", "rejected", "recycled", "no outcome"]
for name in groups:
    scores = leads.loc[leads["result"] == name, "max_score"]
    if len(scores):
        ax.hist(scores, bins=40, alpha=0.5, density=True, label=f"{name} ({len(scores)})")
ax.set_xlabel("best fit + engagement")
ax.set_ylabel("share of leads")
ax.set_title("Score distribution by outcome")
ax.legend()
plt.show()

# %% [markdown]
# ## Funnel and lift by decile

# %%
funnel = to_frame(metrics["funnel"])
lift = to_frame(metrics["lift"])
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.bar(funnel["step"], funnel["leads"], color="#4c72b0")
for x, (n, share) in enumerate(zip(funnel["leads"], funnel["from_leads"], strict=True)):
    left.annotate(f"{n:,}\n{share:.1%}", (x, n), ha="center", va="bottom", fontsize=8)
left.set_title("Funnel: lead → MQL → SQL → opportunity → won")
left.set_yscale("log")
right.bar(lift["decile"], lift["lift"], color="#55a868")
right.axhline(1.0, color="grey", linestyle="--", linewidth=1)
right.set_xticks(lift["decile"])
right.set_xlabel("score decile (1 = highest)")
right.set_title("Lift: win rate of the decile / overall win rate")
plt.show()

# %% [markdown]
# ## Threshold sweep against sales capacity
#
# For 50 values of the SQL engagement threshold (among the grades the SQL rule asks for, A by
# default): the share of won deals caught (recall), the share of leads over the threshold that were
# won (precision), and the leads per week it would send to sales. The recommendation is the lowest
# threshold whose weekly volume fits the capacity: the highest recall the team can work. The table
# after the chart gives the same recommendation for the MQL threshold and for plain scores.

# %%
sweep = to_frame(metrics["sweep"]["sql"])
recommended = metrics["recommended"]["sql"]
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.plot(sweep["threshold"], sweep["recall"], label="recall (won deals caught)")
ax.plot(sweep["threshold"], sweep["precision"], label="precision (won / over threshold)")
ax.set_xlabel("SQL engagement threshold")
ax.set_ylabel("rate")
ax.set_ylim(0, 1.05)
volume = ax.twinx()
volume.plot(sweep["threshold"], sweep["per_week"], color="#c44e52", label="leads per week")
volume.axhline(weekly_capacity, color="#c44e52", linestyle="--", linewidth=1, label="sales capacity")
volume.set_ylabel("leads per week")
if recommended:
    ax.axvline(recommended["threshold"], color="black", linestyle=":", linewidth=1)
    ax.set_title(f"Threshold sweep: recommended {recommended['threshold']:.1f} "
                 f"(recall {recommended['recall']:.0%}, {recommended['per_week']:.1f}/week)")
else:
    ax.set_title("Threshold sweep: no threshold fits the capacity")
lines = ax.get_legend_handles_labels()
more = volume.get_legend_handles_labels()
ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
plt.show()
to_frame({name: row or {} for name, row in metrics["recommended"].items()})

# %%
weekly = to_frame(metrics["weekly_sqls"])
fig, ax = plt.subplots(figsize=(10, 3))
ax.bar(weekly["week"], weekly["sqls"], color=["#c44e52" if over else "#4c72b0" for over in weekly["over_capacity"]])
ax.axhline(weekly_capacity, color="black", linestyle="--", linewidth=1)
ax.set_title("New SQLs per week under this rule set (red: over capacity)")
ax.tick_params(axis="x", labelrotation=90, labelsize=7)
plt.show()

# %% [markdown]
# ## Conversion per channel and per offer

# %%
channels = to_frame(metrics["channels"]).set_index("channel")
offers = to_frame(metrics["offers"]).set_index("offer")
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
channels[["mql_rate", "sql_rate", "win_rate"]].plot.bar(ax=left, rot=30)
left.set_title("Per first-touch channel")
offers[["mql_rate", "sql_rate", "win_rate"]].plot.bar(ax=right, rot=30)
right.set_title("Per offer (leads who took it)")
plt.show()
channels[["leads", "mqls", "sqls", "won", "mql_to_sql", "mql_to_won"]]

# %%
offers[["leads", "mqls", "sqls", "won", "mql_to_sql", "mql_to_won"]]

# %% [markdown]
# The last line is a machine-readable summary (the notebook tests read it).

# %%
print(json.dumps({
    "notebook": "02-backtest",
    "source": source,
    "ruleset": ruleset.name,
    "leads": len(result),
    "events": result.events,
    "funnel": {row["step"]: row["leads"] for row in metrics["funnel"]},
    "precision": metrics["sql_quality"]["precision"],
    "recall": metrics["sql_quality"]["recall"],
    "sweep_points": len(metrics["sweep"]["sql"]),
    "recommended_threshold": recommended["threshold"] if recommended else None,
    "seconds": round(seconds, 3),
}))
