# Two entry points for people: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
EXTRAS ?= postgres,torch,ocr,codecs,test
HEUDICONV ?= heudiconv==1.5.1

.PHONY: run install system-deps test lint unit bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build on local disk; the extra's range then adds nothing.
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# heudiconv's test DICOM files (tests/integration/test_realworld.py); its own dependencies
	# (datalad, nipype...) are heavy and not needed to read them
	$(PY) -m pip install -q --no-deps "$(HEUDICONV)"
	touch $@

install: system-deps $(VENV)/.installed

system-deps:
	scripts/install-system-deps.sh

run: install
	$(VENV)/bin/deid-gateway serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check gateway tests
	$(VENV)/bin/mypy gateway

test: install lint
	TCP_NODELAY=1 $(PY) -m pytest -q -ra

unit: $(VENV)/.installed
	$(PY) -m pytest -q -m "not integration"

bench: install
	TCP_NODELAY=1 $(PY) tests/bench/bench_spine.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
