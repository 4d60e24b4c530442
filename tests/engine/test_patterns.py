"""Rule-set patterns run on RE2: linear in the text, whatever the pattern (issue: catastrophic regex)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chalicelib.rules.conditions import Context, compile_condition
from chalicelib.rules.model import Leaf
from chalicelib.rules.patterns import compile_pattern

ROOT = Path(__file__).resolve().parents[2]


def test_patterns_are_compiled_by_re2_not_by_pythons_backtracking_re() -> None:
    assert type(compile_pattern("^(a+)+$")).__module__.startswith("re2")


def test_matches_keeps_its_meaning() -> None:
    leaf = Leaf(field="job_title", op="matches", value="(?i)\\b(vp|vice president)\\b")
    test = compile_condition(leaf, {})
    assert test(Context({"job_title": "Senior VP, Sales"}))
    assert not test(Context({"job_title": "MVP hunter"}))
    assert not test(Context({"job_title": 42}))


def test_a_catastrophic_pattern_on_a_hostile_company_name_ends() -> None:
    """Under Python's ``re`` this takes 2**64 steps (it never ends); the child's timeout is a
    ceiling for a hang, not a measurement."""
    code = ("from chalicelib.rules.conditions import Context, compile_condition; "
            "from chalicelib.rules.model import Leaf; "
            "t = compile_condition(Leaf(field='company', op='matches', value='^(a+)+$'), {}); "
            "print(t(Context({'company': 'a' * 64 + '!'})), t(Context({'company': 'a' * 64})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
