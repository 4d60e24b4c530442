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
# # 1. Author a rule set
#
# Start from the shipped default, change what your market needs, validate it, and read the SLA it
# amounts to: the document marketing and sales sign. Nothing is published here: backtest the
# candidate in `02-backtest`, compare and publish it in `03-compare-and-publish`.
#
# All logic lives in `chalicelib` (rules, validation) and `baton` (authoring, SLA rendering); this notebook
# only calls it.

# %% tags=["parameters"]
mql_engagement = 40  # the candidate's MQL engagement threshold (the default asks 30)
sql_engagement = 60  # the candidate's SQL threshold for A-fit leads
candidate_path = ""  # write the candidate rule set here as YAML (empty: do not write)

# %%
import json
from pathlib import Path

from baton.backtest.authoring import thresholds, to_yaml, with_threshold
from baton.sla_doc import render_sla
from chalicelib.errors import ValidationFailed
from chalicelib.rules import default_ruleset, parse_ruleset

# %% [markdown]
# ## The default rule set and its stage thresholds

# %%
base = default_ruleset()
print(f"{base.name}: {len(base.fit)} fit rules, {len(base.engagement)} engagement rules, "
      f"{len(base.disqualifiers)} disqualifiers, grades {[(g.grade, g.min_fit) for g in base.grades]}")
for row in thresholds(base):
    print(f"  {row['stage']:>10}: {row['field']} {row['op']} {row['value']}   ({row['path']})")

# %% [markdown]
# ## The candidate: stricter MQL and SQL engagement thresholds
#
# `with_threshold` returns a new, validated rule set; the original is untouched (rule sets are
# immutable). Any other change is a plain edit of the data (`model_dump()`, change, `parse_ruleset`).

# %%
candidate = with_threshold(base, "mql", mql_engagement)
candidate = with_threshold(candidate, "sql", sql_engagement)
body = candidate.model_dump(mode="json", by_alias=True)
body["name"] = "candidate"
body["description"] = f"Default rules with MQL at {mql_engagement} and SQL at {sql_engagement} engagement points."
candidate = parse_ruleset(body)
for row in thresholds(candidate):
    print(f"  {row['stage']:>10}: {row['field']} {row['op']} {row['value']}")

# %% [markdown]
# ## Validation names the exact field
#
# A mistake is refused with the path of the offending field, as the API does on publish.

# %%
broken = candidate.model_dump(mode="json", by_alias=True)
broken["engagement"][0]["caps"]["window_days"] = -7
broken["stages"]["mql"]["when"]["any"][0]["all"][1]["field"] = "engagment"
try:
    parse_ruleset(broken)
    validation_error = None
except ValidationFailed as exc:
    validation_error = exc
    print(exc)
    for problem in exc.details["errors"]:
        print(f"  - {problem['path']}: {problem['message']}")

# %% [markdown]
# ## The SLA this rule set amounts to

# %%
from IPython.display import Markdown, display

sla = render_sla(candidate)
display(Markdown(sla))

# %%
if candidate_path:
    Path(candidate_path).write_text(to_yaml(candidate), encoding="utf-8")
    print(f"wrote {candidate_path}")

# %% [markdown]
# The last line is a machine-readable summary (the notebook tests read it).

# %%
print(json.dumps({
    "notebook": "01-author-ruleset",
    "candidate": candidate.name,
    "thresholds": {f"{t['stage']}.{t['field']}": t["value"] for t in thresholds(candidate)},
    "validation_error_paths": [p["path"] for p in validation_error.details["errors"]] if validation_error else [],
    "sla_chars": len(sla),
    "candidate_path": candidate_path or None,
}))
