# Two commands do all the setup: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.jepa-plan-installed
ENVS_STAMP := $(VENV)/.jepa-plan-envs-installed

.PHONY: demo test mutants install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch comes first and pinned: these builds lie on this machine's disk (see DESIGN.md).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# The external benchmark envs (stable-worldmodel TwoRoom, gymnasium-robotics PointMaze): the
# tests of their adapters run under make test; make demo (two_rooms) does not need them.
$(ENVS_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install -e '.[dev,envs]'
	touch $(ENVS_STAMP)

install: $(STAMP)

# Train (stages already done are skipped; a killed run resumes), then plan with GRASP (our tuned preset) and CEM on the same goals.
demo: $(STAMP)
	$(PY) train.py resume=true
	$(PY) plan.py checkpoint=outputs/train/two_rooms/world_model.pt planners=[grasp_tuned,cem]

test: $(STAMP) $(ENVS_STAMP)
	$(PY) -m pytest -q -n auto

# Plant each known planner fault in a copy of the tree and check that a planner test fails (about 7 min).
mutants: $(STAMP) $(ENVS_STAMP)
	$(PY) tests/mutants.py

clean:
	rm -rf outputs data/two_rooms wandb lightning_logs
