# monet-keras: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := demo_data
DEMO_RUN := runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv venv-compat demo demo-data test test-fast test-compat lint notebook wheel bench clean

# The requirements, then the kit itself as an editable install (no PYTHONPATH needed anywhere).
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The oldest supported stack (Kaggle's images): a separate venv from requirements-kaggle.txt.
COMPAT_VENV := .venv-compat
COMPAT_PY := $(COMPAT_VENV)/bin/python
venv-compat: $(COMPAT_VENV)/.installed

$(COMPAT_VENV)/.installed: requirements-kaggle.txt pyproject.toml
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_PY) -m pip install -q --upgrade pip
	$(COMPAT_PY) -m pip install -q -r requirements-kaggle.txt
	$(COMPAT_PY) -m pip install -q --no-deps -e .
	touch $@

demo-data: $(DEMO_DATA)/photo_tfrec

$(DEMO_DATA)/photo_tfrec: | venv
	$(PY) -m tfrecords_tools demo $(DEMO_DATA) --monet 60 --photos 120 --size 256 --seed 0 --force

# The notebook, executed with papermill on the demo data: runs/demo/Os/ holds the executed
# notebook, its figures, images.zip and the evaluation; runs/demo/results.md the summary.
demo: demo-data
	$(PY) -m monet_keras experiments --data $(DEMO_DATA) --out $(DEMO_RUN) --variants Os \
	    -p image_size 64 -p base_filters 16 -p epochs 12 -p batch_size 4
	@echo "demo outputs in $(DEMO_RUN)/Os/"

# Two pytest workers (a test file each at a time): most of a test's time is tracing and Python,
# which one core does, so two workers finish the suite sooner on two cores.
PYTEST := -m pytest -q -n 2 --dist loadfile

# The tests whose code runs on both Keras backends run a second time under JAX.
JAX_TESTS := test_backend_choice.py test_losses.py test_networks.py test_generators.py test_augment.py test_diffaugment.py \
    test_image_pool.py test_submission.py test_training.py::test_two_steps_of_every_variant test_cut.py

test: venv lint
	$(PY) $(PYTEST)
	KERAS_BACKEND=jax $(PY) $(PYTEST) $(addprefix tests/,$(JAX_TESTS))

# The edit-run loop: everything but the tests that train or execute the notebook.
test-fast: venv
	$(PY) $(PYTEST) -m "not slow"

# The core tests and the notebook (papermill, tiny size) on the oldest supported stack.
COMPAT_TESTS := test_networks test_losses test_data test_checkpoints test_training test_submission \
    test_metrics test_kaggle_extractor test_notebook
test-compat: venv-compat
	$(COMPAT_PY) $(PYTEST) $(patsubst %,tests/%.py,$(COMPAT_TESTS))

lint: venv
	$(PY) -m ruff check .

# Regenerate notebooks/monet_cyclegan.ipynb from monet_keras/experiments/notebook_cells.py.
notebook: venv
	$(PY) -m monet_keras.experiments.notebook_cells notebooks/monet_cyclegan.ipynb

wheel: venv
	$(PY) -m pip wheel -q --no-deps -w dist .

bench: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO_DATA) runs/demo runs/notebook dist build *.egg-info
