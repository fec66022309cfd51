# Conveniences; each target is the same command the README gives.
.PHONY: run test lint types cluster bench bench-quick
run:
	python3 run.py
test:
	python3 run.py test
cluster:
	python3 run.py cluster
bench:
	python3 run.py bench all --pin
bench-quick:
	python3 run.py bench quick
lint:
	.venv/bin/ruff check .
types:
	.venv/bin/mypy
