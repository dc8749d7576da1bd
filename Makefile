# monet-keras: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := demo_data
DEMO_RUN := runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONPATH := $(CURDIR)

.PHONY: venv demo demo-data test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

demo-data: $(DEMO_DATA)/photo_tfrec

$(DEMO_DATA)/photo_tfrec: | venv
	$(PY) -m tfrecords_tools demo $(DEMO_DATA) --monet 60 --photos 120 --size 256 --seed 0 --force

demo: demo-data
	$(PY) -m monet_keras train --data $(DEMO_DATA) --variant Os --out $(DEMO_RUN) \
	    --image-size 64 --base-filters 16 --epochs 12 --batch-size 4
	$(PY) -m monet_keras translate --generator $(DEMO_RUN)/monet_generator.keras \
	    --photos $(DEMO_DATA) --out $(DEMO_RUN)/images.zip --allow-small
	$(PY) -m monet_keras evaluate --generated $(DEMO_RUN)/images.zip --real $(DEMO_DATA) --stand-in \
	    --out $(DEMO_RUN)/evaluation.json --report $(DEMO_RUN)/memorization.png
	$(PY) -m monet_keras figures --run $(DEMO_RUN)
	@echo "demo outputs in $(DEMO_RUN)/"

test: venv
	$(PY) -m pytest -q

bench: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
