"""The Airflow UI in a real browser (Debian's headless Chromium, driven by
Playwright) against the local cluster: log in, open topology_classifier, fill
the trigger form (smoke mode, one model, the Petastorm feed), trigger, and
watch the run succeed; a wrong value entered in the form is refused.

Screenshots of every step go to ``$TOPO_TEST_OUTPUT/ui/`` (default
``.test-output/ui/`` in the repository)."""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from tests.support.airflow_service import REPO, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.browser]

DAG = "topology_classifier"
SHOTS = Path(os.environ.get("TOPO_TEST_OUTPUT", REPO / ".test-output")) / "ui"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for the UI test: apt-get install -y chromium (.ci/run installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # No sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, local_cluster):
    """A signed-in page, as a person signs in: through the login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(local_cluster.ui_url + "/")
    page.get_by_label("Username").wait_for()
    assert "/auth/login" in page.url  # nothing is shown before signing in
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(local_cluster.secrets()["AIRFLOW_ADMIN_PASSWORD"])
    shot(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(local_cluster.ui_url + "/")
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_trigger_form(page, url: str):
    page.goto(f"{url}/dags/{DAG}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    return dialog


def test_a_run_triggered_from_the_form_succeeds(page, local_cluster):
    url = local_cluster.ui_url
    dialog = open_trigger_form(page, url)
    shot(page, "02-trigger-form")
    dialog.locator('[id="switch:element_smoke"]').click()
    # The models: a multi-select of the known ones. Clear the paper's three, pick one from the list.
    models = dialog.locator("#element_models")
    models.locator('[aria-label="Clear selected options"]').click()
    models.click()
    page.get_by_role("option", name="hlf", exact=True).click()
    assert "hlf" in models.inner_text() and "gru" not in models.inner_text()
    # The form's choices in form order: the generator (kept at toy), the models, then feed_format.
    dialog.get_by_role("combobox").nth(0).click()
    page.get_by_role("option", name="toy", exact=True).click()
    dialog.get_by_role("combobox").nth(2).click()
    page.get_by_role("option", name="petastorm").click()
    # A person approves the promotion (Params section "Promotion", opened on demand).
    dialog.get_by_role("button", name="Promotion").click()
    approval = dialog.locator('[id="switch:element_require_approval"]')
    approval.click()
    approval.scroll_into_view_if_needed()  # the sections fold: the models' field is out of view now
    shot(page, "03-parameters-set")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(f"{url}/dags/{DAG}/runs/**")
    run_id = urllib.parse.unquote(page.url.split("/runs/")[1].split("/")[0])
    shot(page, "04-triggered")
    page.goto("about:blank")  # the run's page refreshes itself while it runs: a third of a core in Chromium

    # The approval waits for a person; approve it in the task's Required Actions.
    api, quoted = local_cluster.api, urllib.parse.quote(run_id, safe="")

    def approval_state() -> str | None:
        states = {t["task_id"]: t["state"] for t in api.task_instances(DAG, run_id)}
        if "failed" in states.values():
            raise AssertionError(f"{states}\n{api.failed_task_logs(DAG, run_id)}")
        return (
            states.get("approve_promotion")
            if states.get("approve_promotion") in ("awaiting_input", "success")
            else None
        )

    assert wait_until(approval_state, 600, "the approval was never asked", 5) == "awaiting_input"
    wait_until(lambda: api.parked(run_id, "approve_promotion", 0), 120, "the scheduler never saw the task park", 2)
    page.goto(f"{url}/dags/{DAG}/runs/{quoted}/tasks/approve_promotion/mapped/0/required_actions")
    page.get_by_text("Promote topo-hlf v").first.wait_for()
    shot(page, "05-approval-asked")
    page.get_by_role("button", name="Approve").click()
    wait_until(lambda: approval_state() == "success", 120, "the approval was not taken")
    page.goto("about:blank")  # only once the answer is in: leaving at once could cancel its request
    status, body = api.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{quoted}/hitlDetails")
    [detail] = body["hitl_details"]
    assert detail["chosen_options"] == ["Approve"] and detail["responded_by_user"]["name"] == "admin", detail

    # Waiting is the API's job; what the run's page then says is the UI's.
    api.wait_for_runs(DAG, 1, timeout=600)

    def finished_state() -> str | None:
        page.goto(f"{url}/dags/{DAG}/runs/{quoted}/details")
        state = (
            page.get_by_role("row")
            .filter(has_text="State")
            .first.inner_text(timeout=30_000)
            .replace("State", "")
            .strip()
        )
        return state if state.lower() in ("success", "failed") else None

    state = wait_until(finished_state, 60, f"run {run_id} finished, but not in the UI", 5)
    shot(page, "06-run-finished")
    assert state.lower() == "success", (state, api.failed_task_logs(DAG, run_id))

    # The run's report, from the run's own Report tab (the plugin's external view), says who approved.
    page.goto(f"{url}/dags/{DAG}/runs/{quoted}")
    page.get_by_role("link", name="Report", exact=True).click()
    page.frame_locator("iframe").first.get_by_text("approved by admin").first.wait_for()
    shot(page, "07-run-report")

    # The form's values reached the run: smoke mode, one model, the Petastorm feed.
    [run] = [r for r in local_cluster.api.runs(DAG) if r["dag_run_id"] == run_id]
    assert (
        run["conf"]["smoke"] is True
        and run["conf"]["models"] == ["hlf"]
        and run["conf"]["feed_format"] == "petastorm"
        and run["conf"]["generator"] == "toy"
        and run["conf"]["require_approval"] is True
    )
    [ti] = [t for t in local_cluster.api.task_instances(DAG, run_id) if t["task_id"] == "train_model"]
    assert ti["state"] == "success" and ti["map_index"] == 0


def test_a_wrong_value_in_the_form_is_refused(page, local_cluster):
    runs_before = len(local_cluster.api.runs(DAG))
    dialog = open_trigger_form(page, local_cluster.ui_url)
    dialog.get_by_role("button", name="Training").click()  # its section opens on demand
    dialog.locator("#element_learning_rate").fill("fast")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    refusal = page.get_by_text("Invalid input for param learning_rate").first
    refusal.wait_for()
    refusal.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the toast finish sliding in
    shot(page, "08-invalid-parameter-refused")
    assert dialog.is_visible()  # the form stays open for a correction
    assert len(local_cluster.api.runs(DAG)) == runs_before  # and no run was created
