"""The native BLAS setting of vidrec.models.als: path resolution and the implementation report."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidrec.models import als


def test_native_blas_path(tmp_path):
    lib = tmp_path / "libopenblas.so.0"
    lib.write_bytes(b"")
    assert als.native_blas_path(str(lib)) == lib
    assert als.native_blas_path("") is None
    assert als.native_blas_path(None) is None
    assert als.native_blas_path(str(tmp_path / "missing.so")) is None
    assert als.native_blas_path("no/such/lib.so") is None  # relative: from the release home


@pytest.mark.spark
def test_use_native_blas_reports_the_implementations(spark, caplog):
    got = als.use_native_blas(spark, "no/such/lib.so")  # a missing library: a warning, Spark's Java BLAS
    home = Path(__file__).resolve().parents[1]  # the source tree is the release home of the tests
    assert f"no file at {home / 'no/such/lib.so'} (run `make setup` in {home}" in caplog.text
    blas, lapack = got.split("/")
    assert blas.endswith("BLAS") and lapack.endswith("LAPACK")
