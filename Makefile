# The two commands: `make run` (set up, then run the default pipeline) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: run test dry-run report-html clean-results

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	snakemake --cores $(CORES)
	@echo
	@echo "Report: $(abspath results/report)/ (quality_vs_steps.png, spectra.png, samples.png, summary.json)"
	@echo "HTML:   make report-html  ->  results/report.html"

test: $(STAMP)
	pytest -q

dry-run: $(STAMP)
	snakemake --cores $(CORES) --dry-run

report-html: $(STAMP)
	snakemake --cores $(CORES) --report results/report.html

clean-results:
	rm -rf results/* .snakemake
