# The two commands a newcomer needs:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system-packages demo demo-headless lint test test-quick bench bench-qc bench-derivatives bench-trends bench-outliers bench-review bench-soak clean

setup: $(VENV)/.installed

system-packages:     ## Debian packages the tests use (Chromium, the PostgreSQL server), when missing and root
	.ci/system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,reference,deploy]"
	$(BIN)/pip install --quiet --no-deps mriqc==24.0.2 templateflow==25.1.2  # test-only: MRIQC's own metric code
	touch $@

demo: setup          ## emulator + sample sessions + Dagster UI with the sensor running
	$(BIN)/datman-flow demo

demo-headless: setup ## the same without the UI: ingest every sample session, print, exit
	$(BIN)/datman-flow demo --headless

lint: setup          ## ruff and the import contracts (docs/architecture.md)
	$(BIN)/ruff check datman_flow tests benchmarks
	$(BIN)/lint-imports

test: lint system-packages ## lint, then the whole test suite (real DICOM from ../shared/dicom where present)
	$(BIN)/pytest -q -n 2 --dist loadgroup

test-quick: setup    ## the suite without the slow real-data tests, for development
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not slow"

bench: setup         ## benchmarks/ingest.py on the Philips session of ../shared/dicom
	$(BIN)/python benchmarks/ingest.py

bench-qc: setup      ## benchmarks/qc.py: QC metrics of the Philips MPRAGE, BOLD and DTI
	$(BIN)/python benchmarks/qc.py

bench-derivatives: setup ## benchmarks/derivatives.py: what the T1w's derivatives and MNI normalisation add to its QC
	$(BIN)/python benchmarks/derivatives.py

bench-trends: setup  ## benchmarks/trends.py: the qc_trends step on a store of 1,000 synthetic sessions
	PYTHONPATH=. $(BIN)/python benchmarks/trends.py

bench-outliers: setup ## benchmarks/outliers.py: the QC outlier step of one session against 1,000 earlier ones
	$(BIN)/python benchmarks/outliers.py

bench-review: setup  ## benchmarks/review_pages.py: the review app's queue and session page over 2,000 synthetic sessions
	PYTHONPATH=. $(BIN)/python benchmarks/review_pages.py

bench-soak: setup    ## benchmarks/soak.py: the real daemon on PostgreSQL, 200 sessions in bursts with XNAT faults; the sensor tick over 10,000
	PYTHONPATH=. $(BIN)/python benchmarks/soak.py

clean:
	rm -rf demo data .pytest_cache
