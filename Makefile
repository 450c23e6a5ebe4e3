# make quickstart : create .venv, install, run the whole reasoning pipeline on
#                   the synthetic task (tokenizer, SFT, PRM, ThinkPRM, GRPO,
#                   tool use, search; about 15 min on 2 CPU cores). A second
#                   run skips finished stages. QUICKSTART=configs/quickstart.py:debug
#                   for a two-minute run.
# make test       : create .venv, install with test extras, run the suite.
# make results    : rerun README figures (ONLY=name,... ; see tools/results.py
#                   --list) and regenerate the README's tables from their JSON.
#
# Everything runs on the CPU here (JAX_PLATFORMS=cpu); on a GPU/TPU host
# install jax for that backend and launch experiments/*.py directly.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart
PYTEST_ARGS ?= -n 2
export JAX_PLATFORMS ?= cpu
export TPU_SKIP_MDS_QUERY ?= 1

.PHONY: quickstart test results install install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test,tpu,envs]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

QUICKSTART ?= configs/quickstart.py
quickstart: $(VENV)/.installed
	$(PY) experiments/quickstart.py --config=$(QUICKSTART) \
	    --workdir=$(WORKDIR)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS) tests

ONLY ?=
results: $(VENV)/.installed-test
	$(PY) tools/results.py $(if $(ONLY),--only=$(ONLY),--readme)

clean:
	rm -rf $(VENV) runs .pytest_cache
