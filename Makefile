# vidrec: `make demo` runs the nightly pipeline on a generated sample; `make test` runs the tests.
# Each target does its own set-up (a .venv in the project, Delta's jars cached in .cache/jars).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JARS := .cache/jars
DELTA_VERSION := 4.0.1
SCALA := 2.13
STAMP := $(VENV)/.installed
NATIVE := .cache/native
OPENBLAS_JAR := org.bytedeco:openblas:0.3.28-1.5.11:jar:linux-x86_64
BENCH_SIZES ?= 1m,5m,20m
BENCH_NIGHTLY_SIZES ?= 1m
BENCH_ARGS ?=
WAREHOUSE ?= ./warehouse
DEMO_RAW ?= ./data/sample
# The demo catalog's language: zh (Chinese titles, genres, descriptions and names: the site the pipeline
# is specified for) or en.
DEMO_LANG ?= zh
DEMO_DATE ?= 2026-03-31
PYTEST_ARGS ?=
# Test processes (pytest-xdist), whole files per process so module fixtures (shared nightly runs) stay
# shared; each has its own local[2] SparkSession. 2 on a 2-core machine: the tests wait on Spark's
# planning and Delta's log as much as they compute, so two files overlap. 0 runs in this process.
PYTEST_WORKERS ?= 2

ML100K_SRC ?= ./data/ml-100k-src
ML100K_RAW ?= ./data/ml-100k
ML100K_WAREHOUSE ?= ./warehouse-ml

.PHONY: setup demo test test-fast test-extended test-all test-cluster bench bench-nightly bench-quick bench-deps lint clean sample data-ml100k nightly-ml100k eval-ml100k tune-ml100k docs

setup: $(STAMP) $(JARS)/.resolved $(NATIVE)/.resolved

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

# Delta Lake's Spark jars, resolved once from Maven Central into the project (no network afterwards).
$(JARS)/.resolved:
	mkdir -p $(JARS)
	for a in io.delta:delta-spark_$(SCALA):$(DELTA_VERSION) io.delta:delta-storage:$(DELTA_VERSION); do \
	  mvn -q -B dependency:copy -Dartifact=$$a -DoutputDirectory=$(JARS) || exit 1; done
	touch $@

# A native OpenBLAS for Spark's ALS (als.native_blas), from Maven Central's bytedeco jar: no root, no apt.
# Optional: where it cannot be had (another CPU architecture, offline), ALS runs on Spark's Java BLAS.
$(NATIVE)/.resolved:
	mkdir -p $(NATIVE)/jar
	if mvn -q -B dependency:copy -Dartifact=$(OPENBLAS_JAR) -DoutputDirectory=$(NATIVE)/jar; then \
	  $(PYTHON) -c "import sys, zipfile, pathlib; z = zipfile.ZipFile(next(pathlib.Path(sys.argv[1]).glob('*.jar'))); \
	  [pathlib.Path(sys.argv[2], pathlib.Path(n).name).write_bytes(z.read(n)) for n in z.namelist() \
	   if pathlib.Path(n).name in ('libopenblas.so.0', 'libgfortran.so.5', 'libquadmath.so.0', 'libgcc_s.so.1')]" \
	  $(NATIVE)/jar $(NATIVE); \
	else echo "native OpenBLAS not available: Spark's ALS will use its Java BLAS"; fi
	rm -rf $(NATIVE)/jar
	touch $@

GENERATE_SAMPLE = $(PY) jobs/generate_sample.py --out $(DEMO_RAW) --users 2000 --items 600 --days 60 \
  --end-date $(DEMO_DATE) --lang $(DEMO_LANG)

sample: setup
	$(GENERATE_SAMPLE)

demo: setup
	rm -rf $(WAREHOUSE) $(DEMO_RAW)
	$(GENERATE_SAMPLE)
	$(PY) jobs/nightly.py --raw $(DEMO_RAW) --warehouse $(WAREHOUSE) --run-date $(DEMO_DATE)

# The gate (CI, every change): every test but the `extended` scenario matrices (15-31 min on 2 cores).
# A test stuck past its time limit is ended with every thread's stack (tests/conftest.py); when such
# hangs are the only failures, tests/rerun_hung.py prints the stacks and reruns those tests once.
test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not extended" $(PYTEST_ARGS) \
	  || $(PY) tests/rerun_hung.py $$? $(PYTEST_ARGS)

# The scheduled suite (nightly, and before a release): the tests marked `extended`, which repeat whole
# nightlies (docs/architecture.md, Development), then the standalone cluster and Airflow tests.
test-extended: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m extended $(PYTEST_ARGS)
	$(MAKE) test-cluster

test-all: test test-extended

test-fast: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

# A Spark standalone master and two workers on loopback run the nightly from the wheel via spark-submit
# (TorchDistributor across both executors); tests/test_cluster.py stops every process it started.
# tests/test_airflow.py loads the DAG in a real Airflow, installed once (~3 min) into .cache/airflow-venv
# by pipelines/airflow-venv.sh (pinned in pipelines/airflow-requirements.txt; not the project's venv).
test-cluster: setup
	VIDREC_TEST_CLUSTER=1 $(PY) -m pytest -m cluster tests/test_cluster.py tests/test_airflow.py $(PYTEST_ARGS)

# Benchmarks (BENCHMARKS.md, bench/results.json): `make bench BENCH_SIZES=1m` for one size; the default
# runs 1m, 5m and 20m (generated data cached in data/bench/; 50 min on 2 cores). implicit is a bench-only
# dependency. `make bench-nightly` times the default model set's first and second night at
# BENCH_NIGHTLY_SIZES (long: at 1m the deep text model alone trains 2 epochs in ~170 s, and a first
# night fits each model up to three times) and folds them into the same results.
bench-deps: setup
	$(PY) -c "import implicit" 2>/dev/null || $(PY) -m pip install -q \
	  $$(grep -E '^(implicit|scipy|threadpoolctl|tqdm)==' requirements.lock)
	$(PY) -m pip check

bench: bench-deps
	$(PY) bench/run.py --sizes $(BENCH_SIZES) $(BENCH_ARGS)

bench-nightly: bench-deps
	$(PY) bench/run.py --sizes $(BENCH_NIGHTLY_SIZES) --skip nightly,als,topn,loader,deep \
	  --full-nightly-sizes $(BENCH_NIGHTLY_SIZES) $(BENCH_ARGS)

# A few minutes: the tiny size, one repeat, everything but the deep models; writes to /tmp, not the repo.
bench-quick: bench-deps
	$(PY) bench/run.py --sizes tiny --skip deep --out-json /tmp/vidrec-bench-quick.json \
	  --out-md /tmp/vidrec-bench-quick.md $(BENCH_ARGS)

# ruff (style, imports), mypy over src/ (types), and the import-layer rule (tests/test_architecture.py:
# imports point down the layers cli > pipeline > evaluation > serving|analytics > models > data, no cycle).
lint: setup
	$(PY) -m ruff check src jobs tests pipelines bench
	$(PY) -m ruff format --check src jobs tests pipelines bench
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py

# docs/tables.md, generated from the Spark schemas (vidrec.data.schemas) and the table names (vidrec.constants);
# tests/test_docs.py fails when it is stale. Needs only the venv (no Spark session, no jars).
docs: $(STAMP)
	$(PY) -m vidrec.cli.docs

clean:
	rm -rf $(WAREHOUSE) data/sample spark-warehouse metastore_db derby.log .pytest_cache

# MovieLens-100k from the recbole 1.2.1 wheel on PyPI (recbole is not a dependency; data is never committed)
data-ml100k: setup $(ML100K_RAW)/events.parquet

$(ML100K_SRC)/ml-100k.inter:
	$(PY) jobs/fetch_ml100k.py --out $(ML100K_SRC)

$(ML100K_RAW)/events.parquet: $(ML100K_SRC)/ml-100k.inter
	$(PY) jobs/convert_movielens.py --src $(ML100K_SRC) --out $(ML100K_RAW)

nightly-ml100k: data-ml100k
	rm -rf $(ML100K_WAREHOUSE)
	$(PY) jobs/nightly.py --raw $(ML100K_RAW) --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 --conf conf/movielens.yaml

# Offline evaluation on MovieLens-100k: per-user random 75/25 (seed 42) and per-user chronological 80/20,
# every generator and the hybrid, with the configurations chosen by `make tune-ml100k` (committed in conf/tuned/).
ML_MODELS ?= popularity,itemknn,als,ease,content,ncf,multvae,sequence,gru,text,fusion,hybrid
ML_RANDOM := --protocol random --set evaluation.test_fraction=0.25
ML_CHRONO := --protocol chrono --set evaluation.test_fraction=0.2
ML_MATRIX = $(PY) jobs/nightly.py --raw $(ML100K_RAW) --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 \
	--conf conf/movielens.yaml --stages ingest,matrix
eval-ml100k: data-ml100k
	$(ML_MATRIX)
	$(PY) jobs/evaluate.py --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 --conf conf/tuned/ml100k-random.yaml $(ML_RANDOM) --models $(ML_MODELS)
	$(PY) jobs/evaluate.py --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 --conf conf/tuned/ml100k-chrono.yaml $(ML_CHRONO) --models $(ML_MODELS)

# Hyper-parameters chosen on validation splits carved from each protocol's training side (never its test side):
# writes conf/tuned/ml100k-{random,chrono}.yaml, ops/tuning_trials in the warehouse and MLflow runs in ./mlruns.
# Tuned: the generators below (about 12 min per protocol on 2 cores); ncf, sequence, gru, text and fusion keep
# their defaults (minutes per trial here) and get weight 0 in the tuned blend.
ML_TUNED ?= popularity,itemknn,als,ease,content,multvae,hybrid
tune-ml100k: data-ml100k
	$(ML_MATRIX)
	$(PY) jobs/tune.py --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 --conf conf/movielens.yaml $(ML_RANDOM) --algorithms $(ML_TUNED) --out conf/tuned/ml100k-random.yaml
	$(PY) jobs/tune.py --warehouse $(ML100K_WAREHOUSE) --run-date 1998-04-30 --conf conf/movielens.yaml $(ML_CHRONO) --algorithms $(ML_TUNED) --out conf/tuned/ml100k-chrono.yaml
