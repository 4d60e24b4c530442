"""Rule-set patterns (``op: matches``) run in time linear in the text: RE2, never Python's ``re``.

Python's ``re`` backtracks: a published ``^(a+)+$`` on ``company`` took 3.7 s on a 25-character
company name posted to a public form, and twice as long with each further character, while the
Lambda served nothing else. RE2 (``google-re2``) matches in one pass over the text whatever the
pattern. What it cannot run so (backreferences such as ``\\1``, lookarounds such as ``(?=...)``) it
refuses, and so does rule-set validation, naming the rule.
"""

from __future__ import annotations

from typing import Any, Protocol


class Pattern(Protocol):
    def search(self, text: str) -> Any: ...


def compile_pattern(pattern: str) -> Pattern:
    """The pattern compiled by RE2; ``ValueError`` with RE2's reason when it cannot run there."""
    import re2  # a compiled extension: loaded by the first rule set that has a pattern

    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; RE2 would also print it to stderr
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"pattern {pattern!r:.80} is not supported: {reason}. Patterns run on RE2, in time linear in the "
            "text: backreferences and lookarounds are not available"
        ) from None
    return compiled
