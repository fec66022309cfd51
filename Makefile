# Conveniences; each target is the same command the README gives.
.PHONY: run test lint
run:
	python3 run.py
test:
	python3 run.py test
lint:
	.venv/bin/ruff check . || true
