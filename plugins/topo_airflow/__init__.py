"""Airflow-facing glue shared by the DAGs in dags/: the Params (one JSON schema
per setting) and the task bodies that call the stages in ``tasks/``.

Airflow puts the plugins folder on ``sys.path`` in every component (scheduler,
dag-processor, task runner), so DAG files import ``topo_airflow`` directly.
"""
