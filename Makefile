# diffedu: the two commands of the README, and a few helpers.
#
#   make lab    create .venv if missing, install, start JupyterLab on notebooks/
#   make test   create .venv if missing, install, run unit tests, nbval, browser test
#   make book   the static HTML book of the stored notebooks, in build/book/ (offline)
#   make student-copies   exercise-only notebooks (no outputs, no answers) in build/students/
#
# Knobs (make VAR=value ...):
#   PYTHON       interpreter that creates .venv (>= 3.10)            [python3]
#   TORCH_SPEC   torch to install when .venv has none                 [torch==2.13.0]
#   TORCH_INDEX  index to take torch from (e.g. a CUDA wheel index)   [empty: automatic]
#   EXTRAS       extras of diffedu to install                          [dev,kernels]
#   JOBS         pytest-xdist workers                                  [2]
#   PORT         JupyterLab port                                       [8888]
#   CHROMIUM     browser for the real-browser test                     [/usr/bin/chromium]

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS      ?= dev,kernels
JOBS        ?= 2
PORT        ?= 8888
CHROMIUM    ?= /usr/bin/chromium
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PY  := $(BIN)/python
PIP := $(PY) -m pip
# Reinstall only when pyproject.toml (or the extras asked for) changes.
comma := ,
HASH  := $(shell cksum < pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(HASH)-$(subst $(comma),_,$(EXTRAS))
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
HAVE_NOTEBOOKS = $(wildcard notebooks/*.ipynb)

.PHONY: help install lab test test-fast test-notebooks test-browser browser-deps clean-venv book student-copies

help:
	@echo "make lab         start JupyterLab on notebooks/ (installs into $(VENV) first if needed)"
	@echo "make test        unit tests + every notebook (nbval) + the real-browser test"
	@echo "make test-fast   unit tests without slow ones, no notebooks, no browser"
	@echo "make test-notebooks / make test-browser   one part of make test"
	@echo "make book        the static HTML book of the stored notebooks: build/book/index.html"
	@echo "make student-copies   exercise-only notebooks to hand out: build/students/"
	@echo "make install     only create $(VENV) and install diffedu[$(EXTRAS)]"
	@echo "make clean-venv  remove $(VENV)"

# ---------------------------------------------------------------- environment
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "diffedu needs Python >= 3.10; $(PYTHON) is " + sys.version.split()[0] + " (try: make PYTHON=python3.11 ...)")'
	@if ! $(PYTHON) -m venv $(VENV); then \
	  rm -rf $(VENV); \
	  if command -v apt-get >/dev/null 2>&1; then \
	    ver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    echo "venv failed: installing python$$ver-venv with apt-get"; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "python$$ver-venv" || \
	      $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	    $(PYTHON) -m venv $(VENV); \
	  else exit 1; fi; \
	fi
	@test -x $(PY)

# torch first, on its own: the CPU build where there is no NVIDIA GPU (a bare "torch"
# requirement would pull the multi-GB CUDA build); a torch already in .venv (for example a
# CUDA build) is kept. Then diffedu itself; its "torch>=2.1" is already satisfied.
$(STAMP): | $(PY)
	@rm -f $(VENV)/.installed-*
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "keeping the installed torch $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif [ -n "$(TORCH_INDEX)" ]; then \
	  $(PIP) install '$(TORCH_SPEC)' --index-url '$(TORCH_INDEX)'; \
	elif ! command -v nvidia-smi >/dev/null 2>&1 && \
	     $(PIP) install --dry-run --quiet --report - '$(TORCH_SPEC)' 2>/dev/null | grep -Eq '"name": *"nvidia-'; then \
	  echo "no NVIDIA GPU and '$(TORCH_SPEC)' would be the CUDA build: taking the CPU build from $(TORCH_CPU_INDEX)"; \
	  $(PIP) install '$(TORCH_SPEC)' --index-url '$(TORCH_CPU_INDEX)'; \
	else \
	  $(PIP) install '$(TORCH_SPEC)'; \
	fi
	$(PIP) install -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP)

clean-venv:
	rm -rf $(VENV)

# The real-browser test drives the system's Chromium (Debian package "chromium");
# `playwright install` is never run.
browser-deps:
	@if [ -x "$(CHROMIUM)" ]; then \
	  echo "browser: $(CHROMIUM)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian chromium with apt-get$(if $(SUDO), (sudo),)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; \
	else \
	  echo "no $(CHROMIUM) and no apt-get: install Chromium and pass CHROMIUM=/path/to/chromium"; \
	fi

# ---------------------------------------------------------------- the lab
lab: $(STAMP)
	@echo "Starting JupyterLab on notebooks/; open the http://127.0.0.1:$(PORT)/lab?token=... URL printed below."
	$(BIN)/jupyter lab --no-browser --ip=0.0.0.0 --port=$(PORT) $(ROOT_FLAG) \
	  --ServerApp.root_dir=notebooks --ServerApp.open_browser=False

# ---------------------------------------------------------------- tests
# Unit tests on JOBS workers. Every notebook runs top to bottom in a fresh kernel of
# .venv's Python (cells marked "# NBVAL_CHECK_OUTPUT" must reproduce their stored output),
# one notebook per worker. The browser test must not skip here (DIFFEDU_REQUIRE_BROWSER).
# Tiny models on a few cores run fastest with one thread per worker (threads of parallel
# workers otherwise fight over the cores: measured 5x slower training here).
test test-fast test-notebooks test-browser: export OMP_NUM_THREADS ?= 1
# Lint first: pycodestyle + pyflakes, configured in pyproject.toml's [tool.ruff].
LINT = $(BIN)/ruff check diffedu tests benchmarks scripts
UNIT_TESTS = $(PY) -m pytest tests -m "not browser" -n $(JOBS)
NOTEBOOK_TESTS = if [ -z "$(HAVE_NOTEBOOKS)" ]; then echo "no notebooks/*.ipynb yet: nothing to validate"; \
	  else $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider -n $(JOBS) --dist loadscope notebooks/; fi
BROWSER_TEST = DIFFEDU_REQUIRE_BROWSER=1 DIFFEDU_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/browser -m browser -p no:cacheprovider

test: $(STAMP) browser-deps
	$(LINT)
	$(UNIT_TESTS) --run-slow $(PYTEST_ARGS)
	$(PY) scripts/build_book.py
	$(NOTEBOOK_TESTS)
	$(BROWSER_TEST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(LINT)
	$(UNIT_TESTS) $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	$(NOTEBOOK_TESTS)

test-browser: $(STAMP) browser-deps
	$(BROWSER_TEST) $(PYTEST_ARGS)

# ---------------------------------------------------------------- book, students' copies
# The book is built from the notebooks as stored (nothing re-executed); tests/test_book.py
# (a unit test) checks it. Students' copies: outputs cleared, answers and solutions removed.
book: $(STAMP)
	$(PY) scripts/build_book.py --out build/book

student-copies: $(STAMP)
	$(PY) scripts/student_copies.py --out build/students
