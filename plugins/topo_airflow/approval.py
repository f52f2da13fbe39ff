"""The approval step between comparing a challenger and promoting it.

An Airflow human-in-the-loop task (the standard provider's HITLOperator, Airflow
3.3's ``awaiting_input`` state: no worker slot, no triggerer while it waits).
It asks only when there is something to approve: the run's Param
``require_approval`` is on and the challenger beat the champion. Otherwise it
answers itself at once, so the same DAG serves the demo (no approval) and
scheduled retraining (approval). The question shows both scores; the answers
are Approve and Reject; with no answer within ``approval_timeout_minutes`` the
scheduler applies the default, Reject. Either way the task succeeds and hands
its answer to promote_model, which records it on the version: a rejection
is a decision, not a failure.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

APPROVE, REJECT = "Approve", "Reject"


def question(decision: dict) -> tuple[str, str]:
    """The subject and the Markdown body a person decides on."""
    metric, scores = decision["metric"], decision["scores"]
    shown = [metric] + (["mean_auc"] if metric != "mean_auc" else [])  # the metric decides; the AUC for context
    subject = f"Promote {decision['name']} v{decision['challenger']} to champion?"
    rows = "\n".join(
        f"| {role} | v{decision['challenger'] if role == 'challenger' else decision['champion_before']} | "
        + " | ".join(f"{s.get(k, float('nan')):.4f}" for k in shown)
        + " |"
        for role, s in scores.items()
    )
    body = (
        f"{decision['reason']}.\n\n"
        f"| role | version | {' | '.join(shown)} |\n|---|---|{'---|' * len(shown)}\n{rows}\n\n"
        f"Scored on the same held-out events: `{decision['test_data']}`.\n"
        "Approve: the champion alias moves to the challenger. Reject: the champion stays; "
        "the decision and who made it are recorded on the challenger's version."
    )
    return subject, body


def _name(user) -> str | None:
    """The responder's name (a dict, or the API's model of one); None for the timeout default."""
    if user is None:
        return None
    get = user.get if isinstance(user, dict) else lambda key: getattr(user, key, None)
    return get("name") or get("id")


class PromotionApproval(HITLOperator):
    """Approve or reject one challenger's promotion (mapped: one per model)."""

    def __init__(self, *, compared: dict | None = None, **kwargs) -> None:
        kwargs.setdefault("subject", "Promote the challenger to champion?")
        super().__init__(options=[APPROVE, REJECT], defaults=[REJECT], multiple=False, **kwargs)
        self.compared = compared

    def execute(self, context) -> Any:
        params = context["params"]
        decision, required = self.compared["decision"], params.get("require_approval")
        if not required or not decision["promoted"]:
            why = "not required" if not required else "nothing to approve"
            self.log.info("approval %s: %s", why, decision["reason"])
            return self._answer(decision["promoted"], asked=False)
        self.subject, self.body = question(decision)
        self.response_timeout = timedelta(minutes=int(params["approval_timeout_minutes"]))
        self.log.info("asking for approval: %s", json.dumps(decision["scores"]))
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        answer = super().execute_complete(context, event)
        user = answer.get("responded_by_user")
        responded_at = answer.get("responded_at")
        return self._answer(
            answer["chosen_options"] == [APPROVE],
            asked=True,
            by=_name(user),
            timed_out=bool(event.get("timedout")),
            at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
        )

    def _answer(self, approved: bool, asked: bool, by=None, timed_out=False, at=None) -> dict:
        approval = {"approved": approved, "by": by, "timed_out": timed_out, "at": at, "asked": asked}
        return self.compared | {"approval": approval}
