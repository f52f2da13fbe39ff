"""Airflow plugin: every run of the report-writing DAGs gets a "Report" tab
that shows its report page (topo_airflow.report_views)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from topo_airflow.report_views import URL_PREFIX, create_app


class TopoReportsPlugin(AirflowPlugin):
    name = "topo_reports"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Topology classifier reports"}]
    external_views = [
        {
            "name": "Report",
            # relative: the UI resolves it against its own base URL, proxies included
            "href": URL_PREFIX.lstrip("/") + "/reports/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "report",
        }
    ]
