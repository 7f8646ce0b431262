"""Spark MLlib ALS as a candidate generator (implicit feedback by default).

Implicit mode trains on ``confidence`` (ALS weighs each pair by ``1 + alpha * confidence``) and
ranks by the dot product of the factors, i.e. the predicted preference — not a predicted rating.
Explicit mode (``als.implicit: false``) trains on the explicit ``rating`` column. The input is
repartitioned and sorted by ids so the fit is deterministic for a seed (see the Notes of
``pyspark.ml.recommendation.ALS``).

Speed: Spark's ALS spends its time in BLAS ``dspr`` (one packed rank-1 update per rating) and LAPACK
``dppsv`` (one solve per user and item). Spark 4 calls them through ``dev.ludovic.netlib``, which
falls back to Java (the Vector API for BLAS, F2J for LAPACK) when no native library is found.
``als.native_blas`` names a native OpenBLAS (``make setup`` extracts one from Maven Central's
``org.bytedeco:openblas`` jar into ``.cache/native``: no root, no apt; a relative path is read from
the release home, :mod:`vidrec.config.paths`); :func:`use_native_blas`
points the driver JVM at it before its first BLAS call, which in local mode is also the executor.
Measured here: about 3.5x less CPU per iteration at rank 64 (see ``BENCHMARKS.md``). On a cluster,
set ``-Ddev.ludovic.netlib.blas.nativeLibPath=...`` (and ``lapack``) in
``spark.executor.extraJavaOptions``, or install ``libopenblas`` on the executors (found as
``libblas.so.3``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import paths as release
from vidrec.config.sections import AlsConf
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.topn import COL_FEATURES, top_n_from_factors

log = logging.getLogger(__name__)

#: JVM system properties naming the native libraries ``dev.ludovic.netlib`` loads (read at first use).
NETLIB_PROPERTIES = ("dev.ludovic.netlib.blas.nativeLibPath", "dev.ludovic.netlib.lapack.nativeLibPath")


def native_blas_file(setting: str) -> Path:
    """The absolute file ``als.native_blas`` names (a relative path from the release home)."""
    return Path(release.resolve(setting, release.find_home(), "als.native_blas"))


def native_blas_path(setting: str | None) -> Path | None:
    """The library file ``als.native_blas`` names (relative paths from the release home), if it exists."""
    if not setting:
        return None
    path = native_blas_file(setting)
    return path if path.is_file() else None


def use_native_blas(spark: SparkSession, setting: str | None) -> str:
    """Point this JVM's netlib BLAS/LAPACK at ``setting`` (unless already set); return the BLAS in use.

    Takes effect only if no BLAS call happened yet in this JVM (netlib picks its implementation once)
    and, on a cluster, only for the driver: executors need ``spark.executor.extraJavaOptions``.

    Returns
    -------
    str
        See :func:`netlib_implementations`.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the Spark context has no JVM gateway"
    path = native_blas_path(setting)
    if path is not None:
        for prop in NETLIB_PROPERTIES:
            if jvm.System.getProperty(prop) is None:
                jvm.System.setProperty(prop, str(path))
    elif setting:
        advice = release.setup_advice(release.find_home(), "libopenblas.so.0 and the libraries beside it")
        log.warning(
            "als.native_blas: no file at %s (%s, or set als.native_blas to '' for Java BLAS); "
            "Spark uses its Java BLAS (about 3.5x the CPU)",
            native_blas_file(setting),
            advice.replace("into it", "into its folder"),
        )
    return netlib_implementations(spark)


def netlib_implementations(spark: SparkSession) -> str:
    """``"<BLAS class>/<LAPACK class>"`` netlib gives this JVM, e.g. ``JNIBLAS/JNILAPACK`` (native).

    Spark's ALS asks for the native instances and falls back to Java (``VectorBLAS``/``F2jLAPACK``).
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the Spark context has no JVM gateway"
    netlib = jvm.dev.ludovic.netlib
    names = []
    for kind in ("blas", "lapack"):
        package = getattr(netlib, kind)
        try:
            native = getattr(package, f"Native{kind.upper()}").getInstance()
            names.append(str(native.getClass().getSimpleName()))
        except Exception:  # no native library: netlib raises; Spark then uses the Java instance
            try:
                java = getattr(package, f"Java{kind.upper()}").getInstance()
                names.append(str(java.getClass().getSimpleName()))
            except Exception as exc:  # an unexpected Spark build: report, never fail the fit
                log.warning("als: could not tell which %s Spark uses: %s", kind.upper(), exc)
                names.append("unknown")
    return "/".join(names)


def training_frame(interactions: DataFrame, implicit: bool, num_blocks: int) -> DataFrame:
    """The (user_idx, item_idx, value) rows ALS fits on, in a deterministic order."""
    if implicit:
        rows = interactions.where(F.col(C.COL_CONFIDENCE) > 0).select(
            C.COL_USER_IDX, C.COL_ITEM_IDX, F.col(C.COL_CONFIDENCE).cast("float").alias("value")
        )
    else:
        rows = interactions.where(F.col(C.COL_RATING).isNotNull()).select(
            C.COL_USER_IDX, C.COL_ITEM_IDX, F.col(C.COL_RATING).cast("float").alias("value")
        )
    return rows.repartition(num_blocks, C.COL_USER_IDX).sortWithinPartitions(C.COL_USER_IDX, C.COL_ITEM_IDX)


def fit_als(interactions: DataFrame, params: AlsConf, implicit: bool | None = None) -> ALSModel:
    """Fit ALS on ``interactions`` with ``params`` (the ``als`` configuration section)."""
    implicit = params.implicit if implicit is None else implicit
    blas = use_native_blas(interactions.sparkSession, params.native_blas)
    storage = params.storage_level
    train = training_frame(interactions, implicit, params.num_blocks).persist()
    n = train.count()
    if n == 0:
        raise ValueError("ALS: no training rows (no interaction with confidence > 0)")
    als = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=implicit,
        seed=params.seed,
        userCol=C.COL_USER_IDX,
        itemCol=C.COL_ITEM_IDX,
        ratingCol="value",
        numUserBlocks=params.num_blocks,
        numItemBlocks=params.num_blocks,
        checkpointInterval=params.checkpoint_interval,
        intermediateStorageLevel=storage,
        finalStorageLevel=storage,
        coldStartStrategy="drop",
    )
    start = time.perf_counter()
    model = als.fit(train)
    model.userFactors.count()  # materialise the factors while the input is still cached
    seconds = time.perf_counter() - start
    log.info(
        "als: fitted %s ALS rank=%d on %d rows in %.1f s (%.2f s/iteration, BLAS %s)",
        "implicit" if implicit else "explicit",
        params.rank,
        n,
        seconds,
        seconds / params.max_iter,
        blas,
    )
    train.unpersist()
    return model


def generate_als(ctx: FitContext) -> Candidates:
    """ALS lists for ``ctx.target_users`` (users without factors get none here)."""
    params = ctx.conf.als
    model = fit_als(ctx.interactions, params)
    version = model_version(C.ALGO_ALS, ctx.run_date, params)
    user_factors = model.userFactors.select(F.col("id").alias(C.COL_USER_IDX), COL_FEATURES)
    item_factors = model.itemFactors.select(F.col("id").alias(C.COL_ITEM_IDX), COL_FEATURES)
    targets = user_factors.join(
        ctx.target_users.select(C.COL_USER_IDX).distinct(), C.COL_USER_IDX, "left_semi"
    )
    recs = top_n_from_factors(
        ctx.spark,
        targets,
        item_factors,
        ctx.seen,
        ctx.n,
        block_size=ctx.conf.recommend.user_block_size,
        use_gpu=ctx.use_gpu,
    )
    if ctx.save_model:
        model.write().overwrite().save(f"{ctx.work_dir}/als_model")
    return Candidates(recs, version, {"user_factors": user_factors, "item_factors": item_factors})
