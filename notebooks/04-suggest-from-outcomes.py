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
# # 4. Suggest a rule set from outcomes
#
# `baton rules suggest` in a notebook: points learned from the leads before the holdout (an L1
# logistic scorecard on binned attributes, capped event counts and amounts, 20 points doubling the odds),
# written as an ordinary rule set, then measured on the holdout by the same backtest as
# `baton backtest`, next to the current rule set and two baselines on the same raw columns
# (logistic regression, gradient boosting). Nothing is published: the file it writes goes through
# notebook 03 (compare, then publish) or a shadow version like any other.

# %% tags=["parameters"]
n_leads = 4000  # synthetic history size (ignored when data_path is set): baton.synth.planted_history
seed = 7
data_path = ""  # a directory with events (+ outcomes, leads): baton export / baton import; empty: synthetic
holdout_fraction = 0.3  # the newest leads measured, never learned from
holdout_after = ""  # or a date: leads created after it are the holdout (overrides holdout_fraction)
weekly_capacity = 15.0  # SQLs a week sales can work: sets the SQL threshold
current_path = ""  # the current rule set to compare with; empty: the shipped default
leave_out = ""  # fields not to learn from, comma-separated (e.g. custom.lead_quality)
max_rules = 30
out_path = "suggested.yaml"  # where the suggested rule set is written
workers = 2

# %%
import json
import math

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from baton.backtest.io import parse_time, read_history, read_vocabulary
from baton.backtest.report import measure
from baton.metrics import calibration, compare, labeled, roc_points, split_holdout, stage_matrix, weekly_sqls
from baton.suggest import format_suggestion, suggest
from baton.synth import PLANTED_WEIGHTS, planted_history
from chalicelib.rules import default_ruleset, load_ruleset

# %% [markdown]
# ## The history

# %%
if data_path:
    events, outcomes = read_history(data_path)
    vocabulary = read_vocabulary(data_path)  # what the history was imported under (baton import --rules)
    source = data_path
else:
    history = planted_history(n_leads, seed=seed)
    events, outcomes = history.events, history.outcomes
    vocabulary = None
    source = f"planted synthetic history ({n_leads:,} leads, seed {seed})"
    print("planted weights (log-odds):", json.dumps(PLANTED_WEIGHTS))
print(f"{source}: {len(events):,} events, {len(outcomes):,} outcomes")
holdout = ({"holdout_after": parse_time(holdout_after), "holdout_after_text": holdout_after} if holdout_after
           else {"holdout_fraction": holdout_fraction})
measured_on = {"holdout_after": holdout_after} if holdout_after else {"holdout_fraction": holdout_fraction}

# %% [markdown]
# ## The suggestion

# %%
s = suggest(events, outcomes, capacity=weekly_capacity, max_rules=max_rules, workers=workers,
            leave_out=[f.strip() for f in leave_out.split(",") if f.strip()], name="suggested",
            vocabulary=vocabulary, **holdout)
print(format_suggestion(s, out_path))

# %% [markdown]
# The points table: each rule, its points, how many learning leads it applies to and how many of
# them were won.

# %%
points = pd.DataFrame([{
    "rule": r.label, "kind": r.section, "points": r.points, "support": r.support,
    "support %": round(100 * r.support / max(s.train_leads, 1), 1),
    "conversion %": round(100 * r.won / r.support, 1) if r.support else None,
} for r in s.rules])
display(points)

# %% [markdown]
# ## Current vs suggested vs the baselines, on the holdout

# %%
current = load_ruleset(current_path) if current_path else default_ruleset()
current_report = measure(events, outcomes, current, capacity=weekly_capacity, workers=workers, **measured_on)
after = parse_time(holdout_after) if holdout_after else None
fraction = None if holdout_after else holdout_fraction


def held_scores(result):  # the holdout leads with an outcome: the score the AUC ranks by, and won
    _, held = split_holdout(result, after=after, fraction=fraction)
    judged = labeled(held.leads)
    return [r.score_before_outcome for r in judged], [r.won for r in judged]


curves = {
    f"current ({current.name})": held_scores(current_report.result),
    "suggested": held_scores(s.report.result),
    "logistic regression": (s.baseline.logistic_scores, s.baseline.won),
    "gradient boosting": (s.baseline.boosting_scores, s.baseline.won),
}
aucs = {"current": (current_report.holdout or current_report.metrics)["quality"]["auc"],
        "suggested": s.headline()["holdout_auc"], "logistic": s.baseline.logistic_auc,
        "boosting": s.baseline.boosting_auc}
fig, ax = plt.subplots(figsize=(5.5, 5))
for (name, (scores, won)), auc in zip(curves.items(), aucs.values(), strict=True):
    if scores and any(won) and not all(won):
        pts = roc_points(scores, won)
        ax.plot([p["fpr"] for p in pts], [p["tpr"] for p in pts], label=f"{name}: AUC {auc:.3f}")
ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the holdout")
ax.legend(loc="lower right", fontsize=8)
plt.show()

# %% [markdown]
# Calibration of the suggested rules: holdout leads by score band, and how many of each were won.
# A useful score converts more in every higher band.

# %%
scores, won = curves["suggested"]
bands = pd.DataFrame([b for b in calibration(scores, won) if b["leads"]])
display(bands)
if not bands.empty:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(bands["band"].astype(str), 100 * bands["rate"].fillna(0))
    ax.set(xlabel="score band (fit + engagement)", ylabel="won %", title="Conversion by score band (holdout)")
    ax.tick_params(axis="x", labelrotation=45)
    plt.show()

# %% [markdown]
# SQLs a week under the suggested rules, against the capacity they were set for.

# %%
weeks = pd.DataFrame(weekly_sqls(s.report.result, weekly_capacity))
if not weeks.empty:
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(weeks["week"], weeks["sqls"], label="SQLs (suggested rules)")
    ax.axhline(weekly_capacity, color="red", linestyle="--", label=f"capacity ({weekly_capacity:g} a week)")
    ax.set(ylabel="SQLs", title="Weekly SQLs vs capacity")
    ax.set_xticks(weeks["week"][:: max(1, len(weeks) // 10)])
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend()
    plt.show()

# %% [markdown]
# ## The leads whose stage changes

# %%
matrix = stage_matrix(current_report.result, s.report.result)
display(pd.DataFrame(matrix).fillna(0).astype(int).rename_axis("suggested \\ current"))
changed = compare(current_report.result, s.report.result)
print(f"{len(changed):,} leads (of {len(s.report.result):,}) end in another stage; the first 20:")
display(pd.DataFrame([{k: row.get(k) for k in ("lead_id", "max_stage_a", "max_stage_b", "fit_a", "fit_b", "won")}
                      for row in changed[:20]]).rename(columns={"max_stage_a": "current", "max_stage_b": "suggested"}))

# %% [markdown]
# ## Write it, then compare and publish
#
# The file is an ordinary rule set: read it, edit it, then
#
# ```sh
# .venv/bin/baton rules validate suggested.yaml
# .venv/bin/baton backtest HISTORY_DIR --rules suggested.yaml --capacity N --holdout-fraction 0.3
# .venv/bin/baton rules diff active suggested.yaml
# .venv/bin/papermill notebooks/03-compare-and-publish.ipynb out.ipynb -p data_path HISTORY_DIR \
#     -p candidate_path suggested.yaml      # compare; -p confirm True publishes
# ```

# %%
with open(out_path, "w", encoding="utf-8") as handle:
    handle.write(s.yaml)
print(f"wrote {out_path}")
headline = s.headline()
print(json.dumps({
    "source": source, "out_path": out_path, "changed_leads": len(changed),
    "current_holdout_auc": None if aucs["current"] is None or not math.isfinite(aucs["current"])
    else round(aucs["current"], 4),
    **{k: headline[k] for k in ("train_leads", "holdout_leads", "rules", "holdout_auc", "logistic_holdout_auc",
                                "boosting_holdout_auc", "precision_at_capacity", "sql_share", "left_out")},
}))
