"""What the tests share apart from fixtures: Airflow and cluster services, event builders, the per-event reference."""
