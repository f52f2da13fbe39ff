"""The approval step's own logic (plugins/topo_airflow/approval.py); the real
wait for a person is tested over the REST API in tests/test_airflow_operations.py
and in the browser in tests/test_ui_browser.py."""

from __future__ import annotations

import airflow  # noqa: F401  (puts the plugins folder, home of topo_airflow, on sys.path)
import pytest

from topo_airflow.approval import PromotionApproval, question

DECISION = {
    "name": "topo-hlf",
    "challenger": 2,
    "champion_before": 1,
    "metric": "fpr99_ttbar",
    "promoted": True,
    "reason": "challenger fpr99_ttbar 0.1000 beats champion v1 0.2000 by the margin 0.0",
    "scores": {"challenger": {"fpr99_ttbar": 0.1, "mean_auc": 0.95}, "champion": {"fpr99_ttbar": 0.2, "mean_auc": 0.9}},
    "test_data": "/data/retraining/r/prepared/test",
}


def test_the_question_shows_both_versions_and_scores_on_the_same_events():
    subject, body = question(DECISION)
    assert subject == "Promote topo-hlf v2 to champion?"
    assert "| challenger | v2 | 0.1000 | 0.9500 |" in body and "| champion | v1 | 0.2000 | 0.9000 |" in body
    assert "| role | version | fpr99_ttbar | mean_auc |" in body and DECISION["test_data"] in body


@pytest.mark.parametrize(
    ("required", "wins", "approved"),
    [(False, True, True), (False, False, False), (True, False, False)],
)
def test_nobody_is_asked_unless_approval_is_required_and_the_challenger_won(required, wins, approved):
    step = PromotionApproval(
        task_id="approve_promotion", compared={"model": "hlf", "decision": DECISION | {"promoted": wins}}
    )
    answer = step.execute({"params": {"require_approval": required, "approval_timeout_minutes": 1}})
    assert answer["approval"] == {"approved": approved, "by": None, "timed_out": False, "at": None, "asked": False}
    assert answer["decision"]["promoted"] is wins and answer["model"] == "hlf"
