# Two commands set up and run everything on a fresh machine:
#   make demo   install, then run the embedded default (offline, CPU): stage3_checkpoint, domain LoRA, evaluation
#   make test   install, then run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export MODELSCOPE_OFFLINE := 1

.PHONY: install jail demo report test lint dry-run slurm-profile plan runs clean-runs help
SNAKEMAKE_PROFILES := $(HOME)/.config/snakemake

help:
	@echo "make demo    - install into $(VENV), then run the embedded default (stage 3, domain LoRA, evaluation)"
	@echo "make report  - build results/report.html (plots, evaluation table, DAG, runtimes)"
	@echo "make test    - install into $(VENV), then run the test suite"
	@echo "make lint    - snakemake --lint and snakefmt --check"
	@echo "make dry-run - show the DAG (snakemake -n stage3_checkpoint)"
	@echo "make slurm-profile - let 'snakemake --profile slurm' find profiles/slurm (link in ~/.config/snakemake)"
	@echo "make plan    - GPU-hours and cost of the paper run per stage (results/plan.json)"
	@echo "make runs    - list training run directories (current or stale); make clean-runs deletes stale ones"

install: $(STAMP)

# torch first, by itself: `torch==2.13.0` takes the CPU build where one is offered locally and the
# CUDA build on a GPU cluster; the lock file pins everything else.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# The sandbox's jail (bubblewrap) is a system package: installed with apt where this runs as root.
jail:
	@bash tools/install_jail.sh

demo: install jail
	@start=$$(date +%s); \
	$(BIN)/snakemake --cores $(CORES) all || exit $$?; \
	end=$$(date +%s); \
	echo; $(BIN)/python -m darecipe.demo_report; echo "Done in $$((end - start)) s."

# Snakemake's self-contained HTML report (opens offline): figures, evaluation table, DAG, runtimes, provenance.
report: install jail
	$(BIN)/snakemake --cores $(CORES) all
	$(BIN)/snakemake --report results/report.html
	@echo "open results/report.html"

test: install jail
	$(BIN)/python -m pytest -q -rs

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

dry-run: install
	$(BIN)/snakemake -n stage3_checkpoint

# Snakemake looks a profile name up in the working directory, then ~/.config/snakemake/, then /etc/xdg/snakemake/.
slurm-profile:
	mkdir -p $(SNAKEMAKE_PROFILES)
	ln -sfn $(CURDIR)/profiles/slurm $(SNAKEMAKE_PROFILES)/slurm
	@echo "profile 'slurm' -> $(CURDIR)/profiles/slurm; from this folder: snakemake --profile slurm stage3_checkpoint"

plan: install
	$(BIN)/snakemake plan --cores 1 --configfile config/deepanalyze-8b.yaml --replace-workflow-config

runs: install
	$(BIN)/python -m darecipe.runs list

clean-runs: install
	$(BIN)/python -m darecipe.runs clean --yes
