# The two commands of the README. Both install what is missing first (apt + .venv).
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CORES ?= all

.PHONY: run test test-fast test-slurm install report clean

run:
	scripts/install.sh
	snakemake --cores $(CORES)

test:
	scripts/install.sh --test
	python -m pytest -q

test-fast:
	python -m pytest -q -m "not slow"

test-slurm:
	scripts/install.sh
	.ci/slurm_stage.sh

report:
	snakemake --report report.html

install:
	scripts/install.sh --test
