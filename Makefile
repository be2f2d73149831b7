# The README's two commands are `make run` and `make test`; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test test-unit test-connected test-cluster lint install generated bench clean

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
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q -m "not connected"

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

bench: install
	$(PY) -m bench.throughput

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
