"""Rule sets: the data analysts write (``model``), how it is loaded (``loader``) and compiled (``compile``)."""

from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.loader import default_ruleset, load_ruleset, parse_ruleset
from chalicelib.rules.model import RuleSet

__all__ = ["CompiledRuleset", "RuleSet", "compile_ruleset", "default_ruleset", "load_ruleset", "parse_ruleset"]
