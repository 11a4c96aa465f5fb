# Two commands do all the setup: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.jepa-plan-installed

.PHONY: demo test install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch comes first and pinned: these builds lie on this machine's disk (see DESIGN.md).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) train.py resume=true

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf outputs data wandb lightning_logs
