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

# The toy workflow through a real one-node SLURM on localhost (root; installs slurm + munge).
SLURM_DIR ?= /tmp/ser-slurm-ci
test-slurm:
	scripts/install.sh
	rm -rf $(SLURM_DIR)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .ci/slurm_stage.sh snakemake --workflow-profile profiles/ci-slurm \
		--configfile tests/workflow/slurm_config.yaml --directory $(SLURM_DIR)
	test -s $(SLURM_DIR)/results/summary.md
	@echo "slurm stage: $$(ls $(SLURM_DIR)/results/runs/*/*/*/*/*/*.json | wc -l) training jobs ran through SLURM"

report:
	snakemake --report report.html

install:
	scripts/install.sh --test
