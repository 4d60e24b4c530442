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
# `apply_event` the Lambda runs) under a rule set, then read what an SLA review asks: what the rules
# did (MQLs, SQLs, the weekly load against sales capacity), how well the score ranks leads that
# have an outcome (ROC AUC, PR AUC, precision and recall at the capacity cut, calibration, lift by
# decile), and which channels and offers convert. A threshold sweep recommends the lowest SQL
# threshold sales can handle.
#
# History: a directory written by `baton export` or `baton import` (layouts in
# `docs/backtest-data.md`), or a seeded synthetic one. A fresh export may have no outcomes yet: the
# notebook then says what is missing and charts what it can.

# %% tags=["parameters"]
n_leads = 5000  # synthetic history size (ignored when data_path is set)
seed = 7
days = 180
data_path = ""  # a directory with events.parquet or .csv (+ outcomes, leads); empty: synthetic
ruleset_path = ""  # a rule set file, YAML or JSON; empty: the default rule set
weekly_capacity = 50.0  # SQLs per week the sales team can work
handoff_share = 0.1  # precision and recall when this share of leads goes to sales
holdout_fraction = 0.3  # the newest leads, measured apart (0: no holdout)
top_channels = 8  # channels and offers charted one by one; the rest are "other"
workers = 2

# %%
import json
import time

import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter

from baton.backtest import backtest
from baton.backtest.io import read_history
from baton.metrics import split_holdout, summary, to_frame, top_groups, useful_range
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
metrics = summary(result, weekly_capacity=weekly_capacity, handoff_share=handoff_share)
seconds = time.perf_counter() - started
quality = metrics["quality"]
has_outcomes = quality["labeled"] > 0
judged = has_outcomes and quality["auc"] is not None
print(f"{len(result):,} leads over {metrics['info']['intake_weeks']:.1f} weeks of intake; backtest + metrics "
      f"{seconds:.2f} s")
if not has_outcomes:
    print("No sales outcomes in this history yet: ranking quality (AUC, precision at capacity, calibration, lift)"
          " needs won or lost leads. Record them (POST /v1/leads/{id}/outcome, or Accept / Reject in Slack), or"
          " import a CRM export with an outcome column (baton import), then run this notebook again.")
elif not judged:
    print(f"{quality['labeled']:,} leads have an outcome but all of one kind ({quality['won']:,} won): AUC needs"
          " both won and not-won leads.")
for warning in metrics["warnings"]:
    print(f"warning: {warning['message']}")

# %% [markdown]
# ## What the rules did, and what sales recorded
#
# Two separate pictures: the rules' own funnel (lead, MQL, SQL), and the outcomes sales recorded.
# Imported history often has outcomes but no stages in between (a CRM's "converted" flag), so the
# outcomes are not drawn as a step after SQL.

# %%
counts = {row["step"]: row["leads"] for row in metrics["funnel"]}
recorded = metrics["outcomes"]  # each lead's last outcome
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
steps = ["lead", "mql", "sql"]
left.bar(["leads", "MQLs", "SQLs"], [counts[s] for s in steps], color="#4c72b0")
for x, step in enumerate(steps):
    share = counts[step] / counts["lead"] if counts["lead"] else 0.0
    left.annotate(f"{counts[step]:,}\n{share:.1%}", (x, counts[step]), ha="center", va="bottom", fontsize=8)
left.set_title("What the rules did")
left.set_ylabel("leads")
right.bar(list(recorded), list(recorded.values()), color="#55a868")
right.set_title("What sales recorded last, per lead" + ("" if has_outcomes else " (nothing yet)"))
right.set_ylabel("leads")
plt.show()

# %%
sql = metrics["sql_quality"]
print(json.dumps({
    "sqls": sql["sqls"], "sql_share": metrics["sql_share"], "sqls_per_week": metrics["sqls_per_week"],
    "sql_precision": sql["precision"], "sql_recall": sql["recall"], "time_to_stage": metrics["time_to_stage"],
}, indent=1))

# %% [markdown]
# ## How well the score ranks leads
#
# The score is the lead's best `fit + engagement` **before its first sales outcome** (later
# activity would leak the answer); a lead the rules disqualified ranks below every other. Only
# leads with an outcome count; `won` is the positive class. The ROC curve and its area (AUC: the
# chance a won lead outranks a lost one), precision and recall when the top leads go to sales, and
# calibration: does conversion rise with the score band?

# %%
if judged:
    roc = to_frame(quality["roc"])
    bands = to_frame([band for band in quality["calibration"] if band["leads"]])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    left.plot(roc["fpr"], roc["tpr"], color="#4c72b0", label=f"rule set (AUC {quality['auc']:.3f})")
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    cut = quality.get("at_capacity")
    if cut and cut["threshold"] is not None:
        point = roc[roc["threshold"] >= cut["threshold"]].iloc[-1]
        left.scatter([point["fpr"]], [point["tpr"]], color="#c44e52", zorder=3,
                     label=f"capacity cut ({quality['capacity_share']:.0%} of leads)")
    left.xaxis.set_major_formatter(PercentFormatter(1.0))
    left.yaxis.set_major_formatter(PercentFormatter(1.0))
    left.set_xlabel("not-won leads handed over")
    left.set_ylabel("won leads handed over")
    left.set_title(f"ROC: {quality['labeled']:,} leads with an outcome")
    left.legend(fontsize=8, loc="lower right")
    right.bar(bands["band"], bands["rate"], color="#55a868")
    right.axhline(quality["base_rate"], color="grey", linestyle="--", linewidth=1, label="all leads")
    for x, (n, rate) in enumerate(zip(bands["leads"], bands["rate"], strict=True)):
        right.annotate(f"{n:,}", (x, rate), ha="center", va="bottom", fontsize=7)
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_xlabel("score band (leads in the band above each bar)")
    right.set_ylabel("won")
    right.set_title("Calibration: conversion by score band")
    right.tick_params(axis="x", labelrotation=45, labelsize=7)
    right.legend(fontsize=8)
    plt.show()
    rows = {"at capacity": quality.get("at_capacity"), f"top {handoff_share:.0%}": quality["at_share"]}
    display_rows = {name: {"leads": round(row["leads"]), "precision": f"{row['precision']:.1%}",
                           "recall": f"{row['recall']:.1%}"} for name, row in rows.items() if row}
    print(json.dumps({"roc_auc": round(quality["auc"], 3), "pr_auc": round(quality["pr_auc"], 3), **display_rows},
                     indent=1))
else:
    print("no ROC or calibration chart: no leads with both outcomes to rank (see above)")

# %% [markdown]
# ## Lift by decile
#
# Leads with an outcome ranked by the same score, cut in ten groups (1 = highest). Equal scores
# share a group, so a group can be larger, smaller or empty, and one score never shows two lifts.

# %%
lift = to_frame(metrics["lift"])
if has_outcomes and lift["lift"].notna().any():
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(lift["decile"], lift["lift"].fillna(0), color="#55a868")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(lift["decile"])
    ax.set_xlabel("score decile (1 = highest)")
    ax.set_ylabel("lift (win rate / overall)")
    ax.set_title("Lift by decile")
    plt.show()
else:
    print("no lift chart: it needs won leads")
lift[["decile", "leads", "won", "win_rate", "lift", "min_score", "max_score"]]

# %% [markdown]
# ## Threshold sweep against sales capacity
#
# For 50 values of the SQL engagement threshold (among the grades the SQL rule asks for; leads the
# rule takes by another path, such as hand-raisers, count at every threshold): recall (won deals
# caught), precision, and leads per week of intake. At the rule set's own threshold (the dashed
# line) the sweep shows what the rules did: its recall is the summary's. The recommendation is the
# lowest threshold whose weekly volume fits the capacity.

# %%
sweep = to_frame(metrics["sweep"]["sql"])
current = metrics["current"]["sql"]
recommended = metrics["recommended"]["sql"]
fig, ax = plt.subplots(figsize=(10, 4.5))
if has_outcomes:
    ax.plot(sweep["threshold"], sweep["recall"], label="recall (won deals caught)")
    ax.plot(sweep["threshold"], sweep["precision"], label="precision (won / handed over)")
ax.set_xlabel("SQL engagement threshold")
ax.set_ylabel("rate")
ax.set_ylim(0, 1.05)
ax.yaxis.set_major_formatter(PercentFormatter(1.0))
volume = ax.twinx()
volume.plot(sweep["threshold"], sweep["per_week"], color="#c44e52", label="SQLs per week")
volume.axhline(weekly_capacity, color="#c44e52", linestyle=":", linewidth=1, label="sales capacity")
volume.set_ylabel("SQLs per week")
titles = []
if current:
    ax.axvline(current["threshold"], color="black", linestyle="--", linewidth=1)
    titles.append(f"current {current['threshold']:g}: {current['per_week']:.1f}/week"
                  + (f", recall {sql['recall']:.0%}" if sql["recall"] is not None else ""))
if recommended:
    ax.axvline(recommended["threshold"], color="#55a868", linestyle="-", linewidth=1.5)
    titles.append(f"recommended {recommended['threshold']:.1f}: {recommended['per_week']:.1f}/week"
                  + (f", recall {recommended['recall']:.0%}" if recommended["recall"] is not None else ""))
else:
    titles.append("no threshold fits the capacity")
right_end = useful_range(metrics["sweep"]["sql"])
if right_end:
    ax.set_xlim(0, max(right_end, (recommended or {}).get("threshold", 0), (current or {}).get("threshold", 0)) * 1.1)
ax.set_title("; ".join(titles))
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
ax.set_ylabel("SQLs")
ax.tick_params(axis="x", labelrotation=90, labelsize=7)
plt.show()

# %% [markdown]
# ## Conversion per channel and per offer
#
# The largest channels and offers one by one, the rest added up as "other". Rates are shares of the
# channel's (or offer's) leads.

# %%
labels = {"mql_rate": "became MQL", "sql_rate": "became SQL", "win_rate": "won"}
charts = [("channel", top_groups(metrics["channels"], "channel", top_channels), "Per first-touch channel"),
          ("offer", top_groups(metrics["offers"], "offer", top_channels), "Per offer (leads who took it)")]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for ax, (key, rows, title) in zip(axes, charts, strict=True):
    if not rows:
        ax.set_title(f"{title}: none in this history")
        ax.axis("off")
        continue
    frame = to_frame(rows).set_index(key)[list(labels)].rename(columns=labels)
    frame.plot.barh(ax=ax)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of the group's leads")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
to_frame(charts[0][1])[["channel", "leads", "mqls", "sqls", "won", "mql_to_sql", "mql_to_won"]]

# %% [markdown]
# ## Holdout: the newest leads
#
# The same metrics on the newest leads alone: what a rule set tuned on older history would face.

# %%
holdout = None
if holdout_fraction and len(result) >= 10:
    _, newest = split_holdout(result, fraction=holdout_fraction)
    holdout = summary(newest, weekly_capacity=weekly_capacity, handoff_share=handoff_share)
    held = holdout["quality"]
    print(f"newest {holdout_fraction:.0%}: {len(newest):,} leads, {held['labeled']:,} with an outcome; "
          f"ROC AUC {held['auc'] if held['auc'] is None else round(held['auc'], 3)}, "
          f"PR AUC {held['pr_auc'] if held['pr_auc'] is None else round(held['pr_auc'], 3)}")

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
    "precision": sql["precision"],
    "recall": sql["recall"],
    "labeled": quality["labeled"],
    "auc": quality["auc"],
    "pr_auc": quality["pr_auc"],
    "holdout_auc": holdout["quality"]["auc"] if holdout else None,
    "sweep_points": len(metrics["sweep"]["sql"]),
    "current_threshold": current["threshold"] if current else None,
    "recommended_threshold": recommended["threshold"] if recommended else None,
    "warnings": [w["code"] for w in metrics["warnings"]],
    "seconds": round(seconds, 3),
}))
