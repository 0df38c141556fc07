# The README's commands. Every target does its own set-up, so each works on a fresh clone.
SHELL := /bin/bash
UV_VERSION := 0.13.9
PYTHON := .venv/bin/python
# Two pytest-xdist workers a core: a third of the suite's time waits on real traffic and subprocesses
# (2 workers on 2 cores: 295 s wall for 359 s of CPU; 4 workers: 255 s).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
SAM := .venv-sam/bin/sam
CHECKOV := BC_SKIP_MAPPING=TRUE CHECKOV_NO_VERSION_CHECK=TRUE .venv-checkov/bin/checkov --skip-download --compact --quiet
# sam build needs the functions' runtime (python3.13) on PATH; pyenv keeps it here.
PY313_BIN ?= $(HOME)/.pyenv/versions/3.13.0/bin
# Checkov checks template.yaml cannot pass, each with its reason in docs/security-checks.md.
TEMPLATE_CHECKOV_SKIPS := CKV_AWS_21,CKV_AWS_27,CKV_AWS_117,CKV_AWS_119,CKV_AWS_158,CKV_AWS_173
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-west-2

.PHONY: demo test lint typecheck unit bench validate-template check-stack checkov build-stack env system-tools image local-image sam-env checkov-env clean

demo: system-tools env  ## the local end-to-end demo: alarm -> capture pods -> pcaps -> index -> teardown
	$(PYTHON) -m localcloud.demo

test: system-tools env sam-env lint typecheck check-stack  ## everything CI runs
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The C merge's warnings fail here, not in a user's source install (another compiler may warn anew);
# under Py_LIMITED_API for 3.11 (as pyproject builds it), so a call outside that stable ABI fails here too.
lint: env
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$${CC:-cc} -fsyntax-only -std=c11 -Wall -Wextra -Werror -DPy_LIMITED_API=0x030B0000 -I"$$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" cli/eks_capture_cli/_merge_core.c

typecheck: env
	.venv/bin/mypy layers/eks_capture cli/eks_capture_cli capture-image/eks_capture_agent localcloud functions tests bench

# --language-extensions: SAM CLI expands the AWS::LanguageExtensions transform's Fn::ForEach (the
# per-cluster resources) itself only when asked; without it, sam validate and sam build reject the loops.
validate-template: sam-env
	$(SAM) validate --language-extensions --template template.yaml
	$(SAM) validate --lint --template template.yaml
	.venv-sam/bin/cfn-lint template.yaml

check-stack: validate-template checkov build-stack  ## the deployable stack: template linted, security-scanned and built

checkov: checkov-env env sam-env  ## Checkov on template.yaml, the in-cluster manifests and rendered capture Jobs
	scripts/checkov-template.sh $(TEMPLATE_CHECKOV_SKIPS)
	$(CHECKOV) -d deploy/kubernetes --framework kubernetes
	scripts/checkov-manifests.sh

# sam build runs the functions' Python (3.13): from PY313_BIN, else python3.13 on PATH, else in SAM's build
# container when Docker answers; without any of them it says how to get one.
# Then that Python compiles the build's bytecode: SAM ships none (it unpacks wheels itself), and Lambda's
# /opt and /var/task are read-only, so each cold start compiled every module it imported and threw it away
# (importing the trigger's handler on Python 3.13 from its layers' packages: 1.21 s without, 0.55 s with).
# checked-hash, not timestamps: SAM's zips date every file 1980-01-01, which no timestamp .pyc would
# match; a source that differs from its .pyc is compiled again, never run stale.
build-stack: sam-env  ## sam build (arm64 wheels for the layers), as sam deploy would ship it; each function under 250 MiB
	@py313="$(PY313_BIN)"; \
	if [ ! -x "$$py313/python3.13" ] && command -v python3.13 >/dev/null 2>&1; then py313=$$(dirname "$$(command -v python3.13)"); fi; \
	if [ -x "$$py313/python3.13" ]; then \
	  echo "sam build with $$py313/python3.13"; \
	  PATH="$$py313:$$PATH" PYENV_VERSION=3.13.0 $(SAM) build --language-extensions --template template.yaml --cached && \
	  PYENV_VERSION=3.13.0 "$$py313/python3.13" -m compileall -q -j 0 --invalidation-mode checked-hash .aws-sam/build; \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  echo "no python3.13 in $(PY313_BIN) or on PATH: sam build --use-container (SAM's python3.13 build image)"; \
	  $(SAM) build --use-container --language-extensions --template template.yaml --cached && \
	  echo "no python3.13 to compile the build's bytecode: each cold start compiles every module it imports" >&2; \
	else \
	  echo "make build-stack (part of make test) runs sam build, which needs Python 3.13, the functions' runtime." >&2; \
	  echo "None in $(PY313_BIN) or on PATH, and no Docker daemon for 'sam build --use-container'. Either:" >&2; \
	  echo "  pyenv install 3.13.0                  (the default PY313_BIN is pyenv's 3.13.0)" >&2; \
	  echo "  make test PY313_BIN=/dir/with/python3.13/bin" >&2; \
	  echo "  start Docker, and make uses sam build --use-container" >&2; \
	  exit 1; \
	fi
	.venv-sam/bin/python scripts/lambda_sizes.py

bench: system-tools env  ## every benchmark, one results table in bench/RESULTS.md
	$(PYTHON) -m bench

env: .venv/.synced

# --compile-bytecode: every Python process of the tests (moto's server, each local Lambda, each handler
# import check) loads boto3, botocore, moto and kubernetes; without .pyc files (uv writes none by default,
# and PYTHONDONTWRITEBYTECODE stops Python writing them) each compiles them again from source, about half
# of its start-up CPU. The Makefile is a prerequisite so an existing .venv gets compiled once too, and the
# C merge's source so that `make env` rebuilds it (uv rebuilds the editable install on its cache-keys).
.venv/.synced: pyproject.toml uv.lock Makefile cli/eks_capture_cli/_merge_core.c
	command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@command -v "$${CC:-cc}" >/dev/null 2>&1 || { echo "make env: the CLI's merge is C (cli/eks_capture_cli/_merge_core.c) and no C compiler is on PATH: install gcc or clang and Python's headers (Debian: apt-get install gcc python3-dev; as root, make system-tools installs gcc)" >&2; exit 1; }
	uv sync --frozen --quiet --compile-bytecode
	touch $@

sam-env: .venv-sam/.synced

.venv-sam/.synced: tools/sam-requirements.txt Makefile
	command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv venv --quiet --allow-existing .venv-sam
	VIRTUAL_ENV=.venv-sam uv pip install --quiet -r tools/sam-requirements.txt
	.venv-sam/bin/python -m compileall -q -j 0 .venv-sam/lib >/dev/null  # as .venv's --compile-bytecode
	touch $@

checkov-env: .venv-checkov/.synced

.venv-checkov/.synced: tools/checkov-requirements.txt
	command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv venv --quiet --allow-existing .venv-checkov
	VIRTUAL_ENV=.venv-checkov uv pip install --quiet -r tools/checkov-requirements.txt
	touch $@

system-tools:
	scripts/install-system-tools.sh

image:  ## the multi-arch capture image pushed to REPOSITORY (TAG: the commit); prints the CaptureImageUri to deploy
	@test -n "$(REPOSITORY)" || { echo "usage: make image REPOSITORY=<account>.dkr.ecr.<region>.amazonaws.com/<name> [TAG=...]" >&2; exit 2; }
	scripts/build-image.sh $(REPOSITORY) $(TAG)

local-image:  ## the capture image built with podman from a Debian-package base (no registry needed), as the tests run it
	scripts/build-local-image.sh

clean:
	rm -rf .venv .venv-sam .venv-checkov .aws-sam .mypy_cache .ruff_cache .pytest_cache
