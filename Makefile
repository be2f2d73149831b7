# The README's two commands are `make run` and `make test`; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test test-unit test-connected test-faults test-cluster lint install generated bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m devtools.run

test: install lint
	$(PY) -m devtools.preflight
	$(PY) -m pytest -q --durations=15

test-unit: install
	$(PY) -m pytest -q -m "not connected"

# The fault suite (tests/faults) runs short inside `make test`; this is its long form.
# Size: FAULTS_JOBS (jobs per scenario), FAULTS_SECONDS (load duration), FAULTS_ROUNDS.
FAULTS_JOBS    ?= 300
FAULTS_SECONDS ?= 20
FAULTS_ROUNDS  ?= 3
test-faults: install
	$(PY) -m devtools.preflight
	FAULTS_JOBS=$(FAULTS_JOBS) FAULTS_SECONDS=$(FAULTS_SECONDS) FAULTS_ROUNDS=$(FAULTS_ROUNDS) \
		$(PY) -m pytest -q -s -m faults tests/faults

# The end-to-end and cluster tests on a 3-node RabbitMQ cluster of local nodes (quorum
# queues); the cluster is stopped afterwards whatever the outcome.
test-cluster: install
	$(PY) -m devtools.preflight
	@trap '$(PY) -m devtools.nodes cluster-stop --base var/cluster' EXIT; \
	$(PY) -m devtools.nodes cluster-start --base var/cluster && \
	HYBRIDQ_TEST_CLUSTER=var/cluster $(PY) -m pytest -q tests/e2e tests/cluster

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

generated: install
	$(PY) -m shared.asyncapi > docs/asyncapi.yaml
	$(PY) -m devtools.definitions > deploy/rabbitmq/definitions.json

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

# Side by side on throw-away vhosts and databases: hybridq, Celery, Dramatiq, the bare hop.
bench: install $(VENV)/.bench-installed
	$(PY) -m bench.compare $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
