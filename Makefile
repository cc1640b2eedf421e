# Distributed Systems, Hands-On — two commands do all set-up:
#   make lab    install into .venv and open the course in JupyterLab
#   make test   install into .venv and run the whole test suite
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2
PYTEST := $(BIN)/python -m pytest
# nbgrader calls alembic as a subprocess: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install lab test test-slow check lint format unit notebooks grading browser student course bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00-welcome.ipynb

lint: $(STAMP)
	$(BIN)/ruff check labkit tests benchmarks
	$(BIN)/ruff format --check labkit tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format labkit tests benchmarks
	$(BIN)/ruff check --fix labkit tests benchmarks

# The whole suite: lint, unit and property tests, every notebook through
# nbval, the grading round trip and the browser checks, spread over $(JOBS)
# processes (one notebook or test file per process at a time). Longer
# randomized runs are marked slow and run with make test-slow.
test: lint
	$(PYTEST) -n $(JOBS) --dist loadfile --durations=15 -m "not slow" --nbval-lax tests notebooks

test-slow: $(STAMP)
	$(PYTEST) -n $(JOBS) --dist loadfile --durations=15 -m slow tests

# Fast inner loop: lint, unit tests, and the notebooks changed since HEAD.
CHANGED_NBS = $(shell git diff --name-only HEAD -- 'notebooks/*.ipynb'; git ls-files --others --exclude-standard -- 'notebooks/*.ipynb')
check: lint
	$(PYTEST) -n $(JOBS) --dist loadfile -m "not browser and not grading and not slow" tests \
	  $(if $(strip $(CHANGED_NBS)),--nbval-lax $(sort $(CHANGED_NBS)))

unit: $(STAMP)
	$(PYTEST) -n $(JOBS) --dist loadfile -m "not browser and not grading" tests

notebooks: $(STAMP)
	$(PYTEST) -n $(JOBS) --dist loadfile --nbval-lax notebooks

grading: $(STAMP)
	$(PYTEST) -m grading tests

browser: $(STAMP)
	$(PYTEST) -m browser tests

# Student versions of every notebook (solutions stripped, hidden tests
# removed) in build/student/.
student: $(STAMP)
	$(BIN)/python -m tests.grading_tools student build/student

# The course map (labkit/course/__init__.py) is the one list of notebooks:
# rewrite the contents table, the README table and every "next" link from it.
course: $(STAMP)
	$(BIN)/python -m labkit.course sync

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf build test-artifacts .pytest_cache .ruff_cache .hypothesis
