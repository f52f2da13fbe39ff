.PHONY: setup test test-fast lint format run ui cluster-start cluster-stop cluster-status bench-ingest bench-feeds bench-train bench-contracts bench-tuning bench-sources bench-generator bench-physics bench-pileup bench-images bench-training-input gpu-check bench-backends bench-inference
setup:
	bash scripts/bootstrap.sh
test:
	bash scripts/run-tests.sh
# Unit tests only (not marked slow): no Airflow standalone, no PostgreSQL cluster, no browser, no end-to-end DAG runs.
test-fast: setup
	bash -c 'source scripts/airflow-env.sh && exec python -m pytest -q -m "not slow" $(PYTEST_ARGS)'
lint: setup
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
run:
	bash scripts/run-pipeline.sh
ui:
	bash scripts/airflow-ui.sh
cluster-start:
	bash scripts/system-packages.sh
	bash scripts/cluster.sh start
cluster-stop:
	bash scripts/cluster.sh stop
cluster-status:
	bash scripts/cluster.sh status
bench-ingest: setup
	.venv/bin/python benchmarks/ingest_benchmark.py

bench-feeds: setup
	.venv/bin/python benchmarks/feed_benchmark.py

bench-train: setup
	.venv/bin/python benchmarks/train_benchmark.py

bench-training-input: setup
	.venv/bin/python benchmarks/training_input_benchmark.py

gpu-check: setup  # here on CPU; on a GPU host see benchmarks/gpu_check.py
	KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu_check.py --events 4000 --batch-size 128 --output benchmarks/results/gpu_check_cpu.json

bench-backends: setup
	.venv/bin/python benchmarks/backends_benchmark.py

bench-inference: setup  # Keras against ONNX Runtime, the exported models
	.venv/bin/python benchmarks/inference_benchmark.py

bench-contracts: setup
	.venv/bin/python benchmarks/contracts_benchmark.py

bench-tuning: setup
	.venv/bin/python benchmarks/tuning_benchmark.py

bench-sources: setup
	.venv/bin/python benchmarks/sources_benchmark.py

bench-generator: setup
	.venv/bin/python benchmarks/generator_benchmark.py

bench-physics: setup
	.venv/bin/python benchmarks/physics_benchmark.py

bench-pileup: setup
	.venv/bin/python benchmarks/pileup_density.py

# Every image from scratch (needs a running engine: scripts/docker-engine.sh start).
bench-images:
	bash scripts/compose-images.sh --host-ca --gpu --rebuild --env-file .env --report benchmarks/results/compose_images.json
