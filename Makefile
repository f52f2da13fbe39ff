.PHONY: setup test run bench-ingest
setup:
	bash scripts/bootstrap.sh
test:
	bash scripts/run-tests.sh
run:
	bash scripts/run-pipeline.sh
bench-ingest: setup
	.venv/bin/python benchmarks/ingest_benchmark.py
