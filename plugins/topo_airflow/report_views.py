"""The report pages in the Airflow UI: a FastAPI app on the API server.

``GET /topo/reports/{dag_id}/{run_id}`` serves the report a run wrote
(tasks.reporting): the run report of ``topology_classifier`` and
``retrain_classifier``, the search report of ``tune_hyperparameters``. The
plugin (plugins/topo_reports_plugin.py) mounts it and adds a "Report" tab to
every run's page. Access is Airflow's own: the caller must be allowed to read
the DAG's runs (the UI's session cookie or a bearer token), as for the REST API.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

REPORT_KINDS = {"topology_classifier": "runs", "retrain_classifier": "retraining", "tune_hyperparameters": "tuning"}
"""The DAGs that write a report, and the catalog kind of their runs' outputs."""

URL_PREFIX = "/topo"


def _read_runs():
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN)


def create_app() -> FastAPI:
    app = FastAPI(title="Topology classifier reports")

    @app.get("/reports/{dag_id}/{run_id}", dependencies=[Depends(_read_runs())])
    def report(dag_id: str, run_id: str) -> FileResponse:
        from tasks.core.catalog import run_key
        from tasks.core.settings import Settings

        kind = REPORT_KINDS.get(dag_id)
        if kind is None:
            raise HTTPException(404, f"{dag_id} writes no report; these do: {', '.join(REPORT_KINDS)}")
        page = Settings.from_env().catalog.run(run_key(run_id), kind).report
        if not page.exists():
            raise HTTPException(404, f"run {run_id} of {dag_id} has no report yet ({page}): it is written last")
        return FileResponse(page, media_type="text/html")

    return app
