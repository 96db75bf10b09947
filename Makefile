# neurosurrogate: set-up, main job, tests. `make run` and `make test` work on a fresh machine.
.PHONY: setup run test test-all bench clean shipped-model shipped-hay-model

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/neurosurrogate demo --out-dir out/demo

test: setup
	.venv/bin/python -m pytest -q

test-all: setup
	.venv/bin/python -m pytest -q -m "slow or not slow"

bench: setup
	.venv/bin/python benchmarks/groundtruth.py

clean:
	rm -rf out .pytest_cache

shipped-model: setup
	bash scripts/make_shipped_model.sh

shipped-hay-model: setup
	bash scripts/make_hay_model.sh
