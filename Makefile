# The two commands of the README's quick start. Both install everything first.
#   make demo   - bring up the default lab (topologies/v1-gre.yml) end to end, probe it, tear it down
#   make test   - run the test suite (what CI runs through .ci/run)
#   make soak   - 100 up/down cycles (with a fault each) of v1-gre and ha-three-site, 20 kill -9 of
#                 `cnilab up`; checks nothing is left, writes the figures to bench/RESULTS.md
PY := .venv/bin/python
CNILAB := .venv/bin/cnilab

.PHONY: demo test setup lint bench soak clean

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

soak: setup
	$(PY) -m bench.soak --cycles $${SOAK_CYCLES:-100} --kills $${SOAK_KILLS:-20}

clean:
	-$(CNILAB) down --all
