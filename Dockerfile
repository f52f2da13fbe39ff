# One image for every role (Airflow components, Dask scheduler and workers),
# built from the lock file.
FROM python:3.11-slim
ENV UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv
WORKDIR /opt/topo
COPY pyproject.toml uv.lock README.md ./
COPY tasks ./tasks
RUN uv sync --frozen --no-dev
COPY dags ./dags
COPY plugins ./plugins
COPY data_contracts ./data_contracts
