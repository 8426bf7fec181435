# Set-up commands for a fresh machine. Each creates (or refreshes) .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: demo test install clean spec

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[test,distributed]"
	touch $(STAMP)

install: $(STAMP)

## make demo: synthesise a Lorenz-driven spiking recording, fit it, write the result NWB and a report
demo: $(STAMP)
	$(VENV)/bin/nwb-dsr demo --out $(DEMO_DIR)

## make test: the whole suite (unit tests, doctests, tutorials, sweeps on a local Ray)
test: $(STAMP)
	$(PY) -m pytest -q

spec: $(STAMP)
	$(PY) -m nwb_dsr.spec.create_extension_spec

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info
