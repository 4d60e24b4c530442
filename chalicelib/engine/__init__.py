"""The scoring engine: pure and deterministic, the same code online and in the backtest.

``apply_event(state, event, ruleset, now)`` updates ``state`` in place and returns the stage
transitions it caused; ``score`` is the copying variant. No I/O, no clock reads, no boto3.

By concern: ``fit`` (attributes and the fit they score), ``engagement`` (accumulators, decay, caps,
frequency), ``stages`` (disqualifiers, the stage ladder, transitions, the route at SQL),
``outcomes`` (sales feedback), ``explain``; ``scoring`` takes one event through them.
"""

from chalicelib.engine.engagement import engagement_at
from chalicelib.engine.explain import explain, explanation_answer
from chalicelib.engine.fit import new_lead, set_email
from chalicelib.engine.outcomes import OUTCOMES, apply_outcome
from chalicelib.engine.scoring import apply_event, score
from chalicelib.engine.stages import record_transition

__all__ = [
    "OUTCOMES", "apply_event", "apply_outcome", "engagement_at", "explain", "explanation_answer", "new_lead", "record_transition", "score",
    "set_email",
]
