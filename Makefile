# The README's commands. Every target does its own set-up, so each works on a fresh clone.
SHELL := /bin/bash
UV_VERSION := 0.13.9
PYTHON := .venv/bin/python
SAM := .venv-sam/bin/sam
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-west-2

.PHONY: demo test lint typecheck unit bench validate-template env system-tools sam-env clean

demo: env system-tools  ## the local end-to-end demo: alarm -> capture pods -> pcaps -> index -> teardown
	$(PYTHON) -m localcloud.demo

test: env system-tools sam-env lint typecheck validate-template  ## everything CI runs
	$(PYTHON) -m pytest

lint: env
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: env
	.venv/bin/mypy layers/eks_capture capture-image/eks_capture_agent localcloud functions tests bench

validate-template: sam-env
	$(SAM) validate --template template.yaml
	$(SAM) validate --lint --template template.yaml

bench: env system-tools  ## every benchmark, one results table in bench/RESULTS.md
	$(PYTHON) -m bench

env: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --quiet
	touch $@

sam-env: .venv-sam/.synced

.venv-sam/.synced: tools/sam-requirements.txt
	command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv venv --quiet --allow-existing .venv-sam
	VIRTUAL_ENV=.venv-sam uv pip install --quiet -r tools/sam-requirements.txt
	touch $@

system-tools:
	scripts/install-system-tools.sh

clean:
	rm -rf .venv .venv-sam .venv-checkov .aws-sam .mypy_cache .ruff_cache .pytest_cache
