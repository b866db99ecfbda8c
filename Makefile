# ncli: every target creates .venv and installs the project when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU wheel of torch 2.13.0 satisfies the `torch>=2.2` range of pyproject.toml;
# installing it first keeps pip from pulling a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.ncli-installed

.PHONY: demo test check-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/pipeline.sh

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

check-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
