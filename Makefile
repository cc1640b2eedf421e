# Distributed Systems, Hands-On — two commands do all set-up:
#   make lab    install into .venv and open the course (your own copy, in course/) in JupyterLab
#   make test   install into .venv and run the whole test suite
# and a few more for learners and teachers:
#   make refresh NB=07   replace course/07-... by its newest version (your copy goes to course/backup/)
#   make lab-instructor  open notebooks/ (the solved version) with nbgrader's menus
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2
PYTEST := $(BIN)/python -m pytest
# nbgrader calls alembic as a subprocess: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
VENV_OK = $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null

.PHONY: install python-version lab lab-instructor course refresh test test-slow check lint format unit notebooks \
	grading browser student course-map binder-url bench clean

install: $(STAMP)

# labkit needs Python 3.11 or newer: say so, and what to do, before anything is installed.
python-version:
	@if [ -x $(BIN)/python ] && $(VENV_OK); then exit 0; fi; \
	ver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	case "$$ver" in 3.1[1-9]|3.[2-9][0-9]) exit 0;; esac; \
	echo "This course needs Python 3.11 or newer, but '$(or $(PYTHON),python3)' is $${ver:-not there}. Either:"; \
	echo "  - install Python 3.11 (Debian/Ubuntu: sudo apt install python3.11 python3.11-venv)"; \
	echo "    and run make again: it picks python3.11 by itself (or say make lab PYTHON=/path/to/python3.11);"; \
	echo "  - or use conda: conda env create -f environment.yml && conda activate distributed-systems-hands-on"; \
	echo "    && pip install -e . && python -m labkit.course lab"; \
	exit 1

$(STAMP): pyproject.toml | python-version
	$(VENV_OK) || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The learner's course: student notebooks in course/ (written when missing,
# never overwritten), in a JupyterLab without nbgrader's menus.
lab: $(STAMP)
	$(BIN)/python -m labkit.course lab

# Only write the missing student notebooks into course/ (no JupyterLab), e.g. for a JupyterHub or a check.
course: $(STAMP)
	$(BIN)/python -m labkit.course student

refresh: $(STAMP)
	@test -n "$(NB)" || { echo "say which notebook, e.g. make refresh NB=07"; exit 2; }
	$(BIN)/python -m labkit.course refresh $(NB)

# The teacher's course: notebooks/ (solutions in) with nbgrader.
lab-instructor: $(STAMP)
	$(BIN)/python -m labkit.course lab --instructor

lint: $(STAMP)
	$(BIN)/ruff check labkit tests benchmarks conftest.py
	$(BIN)/ruff format --check labkit tests benchmarks conftest.py

format: $(STAMP)
	$(BIN)/ruff format labkit tests benchmarks conftest.py
	$(BIN)/ruff check --fix labkit tests benchmarks conftest.py

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
course-map: $(STAMP)
	$(BIN)/python -m labkit.course sync

# The Binder launch link for this clone's GitHub remote (the README's badge
# uses [tool.labkit] binder-repository in pyproject.toml).
binder-url: $(STAMP)
	$(BIN)/python -m labkit.course binder --from-git

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Removes what the tools generate; never course/, which holds the learner's work.
clean:
	rm -rf build test-artifacts .pytest_cache .ruff_cache .hypothesis
