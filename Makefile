# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv by itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-avx2 lint demo clean

setup: $(STAMP)

# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,onnx,openvino,robots,viewing,figures,ros2]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples

test: setup lint
	$(VENV)/bin/pytest -q

# The suite as an AVX2-only CPU without VNNI sees it (Zen 3, older Core), from a CPU with AVX-512:
# CPUID is masked for every library (benchmarks/isa_emulation.py); needs the cpuid_fault flag and cc.
test-avx2: setup
	$(PY) benchmarks/isa_emulation.py avx2 -- $(VENV)/bin/pytest -q

demo: setup
	$(VENV)/bin/asymformer demo --out demo_output

clean:
	rm -rf $(VENV) demo_output build *.egg-info src/*.egg-info
