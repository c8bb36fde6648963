# The two commands of the README's quick start. Both install everything first.
#   make demo   - bring up the default lab (topologies/v1-gre.yml) end to end, probe it, tear it down
#   make test   - run the test suite (what CI runs through .ci/run)
PY := .venv/bin/python
CNILAB := .venv/bin/cnilab

.PHONY: demo test setup lint bench clean

setup:
	./scripts/bootstrap.sh

demo: setup
	$(CNILAB) demo topologies/v1-gre.yml

test: setup
	./scripts/run-tests.sh

lint: setup
	.venv/bin/ruff check sim mock_api tests bench

bench: setup
	$(PY) -m bench.run_all

clean:
	-$(CNILAB) down --all
