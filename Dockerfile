# One image for every role of docker-compose.yml (Airflow components, Celery
# workers, Dask scheduler and workers, MLflow), built from the lock file.
#   docker build --target cpu -t topo-classifier .     # CPU (the lock as it is)
#   docker build --target gpu -t topo-classifier:gpu . # + TensorFlow's CUDA wheels
# Without registry access: scripts/compose-images.sh builds a local base (and
# PostgreSQL and Redis) from Debian packages and passes it as BASE_IMAGE.
# Behind a proxy that re-signs TLS: put its CA certificates (PEM, *.crt) in
# docker/ca/ before building; they join the image's bundle, which pip and uv
# are pointed at.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS base
ENV UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow PYTHONPATH=/opt/topo UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
COPY docker/ca/ /usr/local/share/topo-ca/
RUN for c in /usr/local/share/topo-ca/*.crt; do [ -e "$c" ] && cat "$c" >> /etc/ssl/certs/ca-certificates.crt; done; \
    pip install --no-cache-dir uv \
 && useradd --uid 50000 --create-home --home-dir /home/topo topo \
 && mkdir -p /opt/airflow/logs /opt/airflow/users /data \
 && chown -R topo /opt/airflow /data  # named volumes start with this ownership
WORKDIR /opt/topo
# The lock first and alone, so that a code change rebuilds only the layers
# below: the dependencies exactly as locked (the celery extra is the executor
# of docker-compose.yml), then the project itself. Bytecode is compiled in the
# build (UV_COMPILE_BYTECODE): the venv is root's and the roles run as `topo`,
# so Python could never cache it and each task would compile tensorflow
# (13 s of CPU) and airflow (5 s) from source again.
# The dependency layer sees only the lock and pyproject.toml: with README.md in
# it (the project's metadata names it), every edit of the README reinstalled all
# dependencies (393 s of the CI's compose test instead of seconds).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra celery --no-cache --no-install-project
COPY README.md ./
COPY tasks ./tasks
RUN uv sync --frozen --no-dev --extra celery --no-cache
COPY dags ./dags
COPY plugins ./plugins
COPY data_contracts ./data_contracts
COPY data_configs ./data_configs
COPY scripts ./scripts
RUN python -m compileall -q tasks dags plugins
USER topo

# The CPU image: every role. It comes before the GPU stage because the legacy
# builder (Debian's engine has no BuildKit) builds every stage up to --target.
FROM base AS cpu

# The GPU training worker: the same environment, with the CUDA build of the
# locked TensorFlow version in place of the CPU one.
FROM base AS gpu
USER root
RUN version=$(python -c "import importlib.metadata as m; print(m.version('tensorflow-cpu'))") \
 && uv pip uninstall --python /opt/venv/bin/python tensorflow-cpu \
 && uv pip install --python /opt/venv/bin/python --no-cache "tensorflow[and-cuda]==${version}"
USER topo
