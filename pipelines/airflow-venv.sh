#!/usr/bin/env bash
# A venv with Apache Airflow and its Spark provider (pipelines/airflow-requirements.txt: every package
# pinned), apart from the project's .venv and requirements.lock: Airflow is not a dependency of vidrec.
# tests/test_airflow.py uses it (`make test-cluster`), and it runs the DAG for real: `airflow dags test`
# (docs/operations.md, "Airflow").
#
#   pipelines/airflow-venv.sh [DIR]     # default .cache/airflow-venv; prints DIR/bin/python
#
# Offline after the first install: a venv whose stamp equals the requirements file is reused as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=pipelines/airflow-requirements.txt
DIR=$(realpath -m "${1:-.cache/airflow-venv}")
STAMP="$DIR/.installed"
if [ -x "$DIR/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then
  echo "$DIR/bin/python"
  exit 0
fi
PYTHON=${PYTHON:-python3}
echo "airflow-venv: installing $(grep -E '^apache-airflow(-providers-apache-spark)?==' "$REQ" | tr '\n' ' ')into $DIR" >&2
rm -rf "$DIR"
"$PYTHON" -m venv "$DIR"
"$DIR/bin/python" -m pip install -q --upgrade "pip==25.3" >&2
"$DIR/bin/python" -m pip install -q --no-deps -r "$REQ" >&2
"$DIR/bin/python" -m pip check >&2
cp "$REQ" "$STAMP"
echo "$DIR/bin/python"
