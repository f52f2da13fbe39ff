-- docker-compose.yml: the databases besides Airflow's (created by the image
-- from POSTGRES_DB) on the first start of an empty volume.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
