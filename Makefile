# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VIGIE := $(VENV)/bin/vigie

.PHONY: install demo test bench bench-video lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,postgres,redis]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m service.demo

# Two pytest processes: much of the suite waits on servers, streams and subprocesses, and
# test files run in order on one process each (their module fixtures are shared state).
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(PY) -m bench

bench-video: install
	$(PY) -m bench.video

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) vigie-data demo-data .pytest_cache
