# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install the workbench, run the main job on embedded data
#   make test   - create .venv, install the workbench with its dev extras, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(MAKE) --no-print-directory browser
	touch $(STAMP)

# Headless Chromium for the browser tests of the report and notebooks, installed where it can be (Debian's
# package, as root); elsewhere those tests are skipped and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	     && { apt-get install -y -qq chromium >/dev/null 2>&1 \
	          || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } \
	|| echo "chromium could not be installed here: the browser tests will be skipped"

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench demo

# Two worker processes (pytest-xdist): most tests are single-threaded Python, so two cores halve the wall time.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) build *.egg-info
