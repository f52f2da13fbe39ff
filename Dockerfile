# One image for every role of docker-compose.yml (Airflow components, Celery
# workers, Dask scheduler and workers, MLflow), built from the lock file.
#   docker build -t topo-classifier .                  # CPU (the lock as it is)
#   docker build --target gpu -t topo-classifier:gpu . # + TensorFlow's CUDA wheels
FROM python:3.11-slim AS base
ENV UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow PYTHONPATH=/opt/topo
RUN pip install --no-cache-dir uv \
 && useradd --uid 50000 --create-home --home-dir /home/topo topo \
 && mkdir -p /opt/airflow/logs /opt/airflow/users /data \
 && chown -R topo /opt/airflow /data  # named volumes start with this ownership
WORKDIR /opt/topo
COPY pyproject.toml uv.lock README.md ./
COPY tasks ./tasks
# The lock, exactly; the celery extra is the executor of docker-compose.yml.
RUN uv sync --frozen --no-dev --extra celery --no-cache
COPY dags ./dags
COPY plugins ./plugins
COPY data_contracts ./data_contracts
COPY scripts ./scripts
USER topo

# The GPU training worker: the same environment, with the CUDA build of the
# locked TensorFlow version in place of the CPU one.
FROM base AS gpu
USER root
RUN version=$(python -c "import importlib.metadata as m; print(m.version('tensorflow-cpu'))") \
 && uv pip uninstall --python /opt/venv/bin/python tensorflow-cpu \
 && uv pip install --python /opt/venv/bin/python --no-cache "tensorflow[and-cuda]==${version}"
USER topo

FROM base AS cpu
