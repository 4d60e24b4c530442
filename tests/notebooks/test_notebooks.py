"""The notebooks run end to end (papermill, small data) and their stored form stays clean.

Each notebook's last cell prints one JSON line; the tests read it from the executed copy. The kernel
is a ``python3`` kernelspec written for this run (under ``JUPYTER_PATH``) that starts this very
interpreter, so a stray user-level ``python3`` kernel elsewhere cannot be picked up instead.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01-author-ruleset", "02-backtest", "03-compare-and-publish", "04-suggest-from-outcomes")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
    }))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "PYTHONPATH", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = str(spec_dir.parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    yield "python3"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run(name: str, out_dir: Path, **parameters: Any) -> tuple[dict[str, Any], Any]:
    """Execute a notebook; return its summary line and the executed notebook."""
    executed = papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"), parameters=parameters,
        kernel_name="python3", cwd=str(ROOT), progress_bar=False,
    )
    last = [c for c in executed.cells if c.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.outputs if o.get("name") == "stdout")
    return json.loads(text.strip().splitlines()[-1]), executed


def images(executed: Any) -> int:
    return sum(
        1 for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    )


def test_author_ruleset(kernel: str, tmp_path: Path) -> None:
    out, _ = run("01-author-ruleset", tmp_path, mql_engagement=45, candidate_path=str(tmp_path / "candidate.yaml"))
    assert out["thresholds"] == {"mql.engagement": 45, "sql.engagement": 60}
    assert out["validation_error_paths"] == ["engagement[0].caps.window_days", "stages.mql.when.any[0].all[1].field"]
    assert out["sla_chars"] > 500  # the SLA document was rendered

    from baton.backtest.authoring import thresholds
    from chalicelib.rules import load_ruleset

    written = load_ruleset(tmp_path / "candidate.yaml")
    assert written.name == "candidate" and thresholds(written)[0]["value"] == 45


def test_backtest_on_synthetic_history(kernel: str, tmp_path: Path) -> None:
    out, executed = run("02-backtest", tmp_path, n_leads=300, seed=3, weekly_capacity=1.0, workers=1)
    assert out["leads"] == 300 and out["events"] == 6000
    assert out["funnel"]["lead"] == 300 and out["funnel"]["mql"] >= out["funnel"]["sql"] > 0
    assert out["sweep_points"] == 50 and out["recommended_threshold"] > 0 and out["current_threshold"] == 60
    assert out["labeled"] > 0 and 0 <= out["auc"] <= 1 and 0 <= out["pr_auc"] <= 1
    # funnel + outcomes, ROC + calibration, lift, sweep, weekly SQLs, channels + offers
    assert images(executed) >= 6


def test_backtest_on_files(kernel: str, tmp_path: Path) -> None:
    from baton.backtest.io import write_events, write_outcomes
    from baton.synth import generate

    history = generate(120, seed=11)
    data = tmp_path / "history"
    data.mkdir()
    write_events(data / "events.parquet", history.events)
    write_outcomes(data / "outcomes.csv", history.outcomes)
    out, _ = run("02-backtest", tmp_path, data_path=str(data), workers=1)
    assert out["source"] == str(data) and out["leads"] == 120 and out["events"] == len(history.events)


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``baton export`` of a small live store that has events but no sales outcomes yet."""
    from baton.backtest.export import export_store
    from baton.synth import generate
    from chalicelib.leads import LeadService
    from chalicelib.rulesets import RulesetService
    from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets

    clock = [0.0]
    leads = InMemoryLeads()
    service = LeadService(leads, RulesetService(InMemoryRulesets(), lambda: clock[0]), lambda: clock[0])
    for event in sorted(generate(60, seed=21).events, key=lambda e: e.ts):
        clock[0] = event.ts
        service.ingest([event])
    out = tmp_path_factory.mktemp("export")
    summary = export_store(leads, out)
    assert summary["outcomes"] == 0 and summary["leads"] > 0
    return out


def test_backtest_on_an_export_without_outcomes(kernel: str, tmp_path: Path, fresh_export: Path) -> None:
    """The issue's case: 02 crashed on a fresh export with no wins yet; it now says what is missing."""
    out, executed = run("02-backtest", tmp_path, data_path=str(fresh_export), workers=1)
    assert out["leads"] > 0 and out["labeled"] == 0 and out["auc"] is None and out["holdout_auc"] is None
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "No sales outcomes in this history yet" in text
    assert "no ROC or calibration chart" in text and "no lift chart" in text
    assert images(executed) >= 3  # the rules' funnel, the sweep, weekly SQLs, channels


def test_compare_on_an_export_without_outcomes(kernel: str, tmp_path: Path, fresh_export: Path) -> None:
    out, executed = run("03-compare-and-publish", tmp_path, data_path=str(fresh_export), mql_engagement=45,
                        workers=1)
    assert out["leads"] > 0 and out["active_auc"] is None and out["valid"] is True
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                   for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "opportunitys" not in text and "wons" not in text and "000000" not in text


def test_compare_and_publish(kernel: str, tmp_path: Path) -> None:
    out, executed = run("03-compare-and-publish", tmp_path, n_leads=300, mql_engagement=45, confirm=True, workers=1)
    assert out["leads"] == 300 and out["changed_leads"] > 0
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    # the count is every changed lead, not the number shown
    assert f"{out['changed_leads']:,} leads (of 300) end in another stage" in text
    assert (out["valid"], out["published"], out["version"]) == (True, True, 1)
    assert out["target"] == "the library's RulesetService"
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "as version 1" in text


def test_suggest_from_outcomes(kernel: str, tmp_path: Path) -> None:
    out_path = tmp_path / "suggested.yaml"
    out, executed = run("04-suggest-from-outcomes", tmp_path, n_leads=1500, seed=5, weekly_capacity=6.0,
                        out_path=str(out_path), workers=1)
    assert out["train_leads"] == 1050 and out["holdout_leads"] == 450
    assert 0 < out["rules"] <= 30 and out["holdout_auc"] > out["current_holdout_auc"]
    assert out["logistic_holdout_auc"] is not None and out["boosting_holdout_auc"] is not None
    assert out["changed_leads"] > 0
    from chalicelib.rules import load_ruleset

    assert load_ruleset(out_path).fit  # the written file is an ordinary rule set
    assert images(executed) >= 3  # ROC (current, suggested, logistic, boosting), calibration, weekly SQLs


# -- the stored notebooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_has_no_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: store it without outputs (`jupytext --sync notebooks/{name}.py` rewrites it)"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_matches_its_py_pair(name: str) -> None:
    from_ipynb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    from_py = jupytext.read(NOTEBOOKS / f"{name}.py")

    def cells(notebook: Any) -> list[tuple[str, str, list[str]]]:
        return [(c.cell_type, c.source.strip(), list(c.metadata.get("tags", []))) for c in notebook.cells]

    assert cells(from_ipynb) == cells(from_py), f"{name}: run `jupytext --sync notebooks/{name}.py`"
    parameters = [c for c in from_py.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1


def test_every_notebook_is_paired() -> None:
    stems_py = {p.stem for p in NOTEBOOKS.glob("*.py")}
    stems_ipynb = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert stems_py == stems_ipynb == set(NAMES)
