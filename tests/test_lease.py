"""The warehouse lease (``ops/lease``): one writer at a time, stale leases taken over, clear refusals.

Races are real: several threads of the test's session call :func:`lease.acquire` at the same moment
(a barrier), each a separate Delta transaction, exactly as jobs on several hosts would; Delta's
optimistic concurrency lets exactly one of them commit.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from vidrec import cli
from vidrec.config.sections import LeaseConf
from vidrec.pipeline import lease

pytestmark = [pytest.mark.spark]

#: Heartbeats often; stale only after a minute (a MERGE can take many seconds on a loaded machine).
FAST = LeaseConf(heartbeat_s=1.0, stale_after_s=60.0, poll_s=0.2)


def dead_holder(job: str, seconds_ago: float) -> lease.Holder:
    then = lease._now_us() - int(seconds_ago * 1e6)
    return lease.Holder("dead-token", job, "r-dead", "host-gone", 4242, then, then)


def row_count(spark, wh: str) -> int:
    return spark.read.format("delta").load(lease.lease_path(wh)).count()


def test_a_second_writer_is_refused_naming_the_holder_and_since_when(spark, warehouse) -> None:
    with lease.hold(spark, warehouse, "nightly", FAST, run_id="run-a") as held:
        with pytest.raises(lease.WarehouseBusy) as err:
            lease.acquire(spark, warehouse, "forget_user", FAST)
        message = str(err.value)
        assert f"warehouse {warehouse} is busy" in message
        assert "job 'nightly' (run run-a, pid" in message and "holding it since" in message
        assert "--wait SECONDS" in message and err.value.exit_code == 3
        assert lease.read_holder(spark, warehouse).token == held.holder.token
    assert lease.read_holder(spark, warehouse) is None and row_count(spark, warehouse) == 0
    lease.acquire(spark, warehouse, "again", FAST).release()  # free again


def test_released_when_the_work_fails(spark, warehouse) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with lease.hold(spark, warehouse, "nightly", FAST):
            raise RuntimeError("boom")
    assert lease.read_holder(spark, warehouse) is None


def test_the_heartbeat_moves_while_the_job_runs(spark, warehouse) -> None:
    with lease.hold(spark, warehouse, "nightly", FAST) as held:
        deadline = time.monotonic() + 600
        now = lease.read_holder(spark, warehouse)
        while (
            now is not None and now.heartbeat_us == held.holder.heartbeat_us and time.monotonic() < deadline
        ):
            time.sleep(0.5)
            now = lease.read_holder(spark, warehouse)
        assert now is not None and now.token == held.holder.token
        assert now.heartbeat_us > held.holder.heartbeat_us
        assert now.started_us == held.holder.started_us
        held.check()


@pytest.mark.parametrize("threads", [3])
def test_racing_writers_exactly_one_wins(spark, tmp_path, threads) -> None:
    for round_ in range(2):
        wh = str(tmp_path / f"wh{round_}")
        if round_ == 1:  # the table exists already (empty): the race is on the insert alone
            lease.acquire(spark, wh, "setup", FAST).release()
        barrier = threading.Barrier(threads)
        won: list[lease.Lease] = []
        busy: list[str] = []
        errors: list[BaseException] = []

        def contender(
            i: int,
            wh: str = wh,
            barrier: threading.Barrier = barrier,
            won: list[lease.Lease] = won,
            busy: list[str] = busy,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait()
                won.append(lease.acquire(spark, wh, f"job{i}", FAST))
            except lease.WarehouseBusy as exc:
                busy.append(exc.holder.job)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        workers = [threading.Thread(target=contender, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        assert errors == [], [f"{type(e).__name__}: {e}" for e in errors]
        assert len(won) == 1, f"round {round_}: {len(won)} winners"
        assert len(busy) == threads - 1 and set(busy) == {won[0].holder.job}
        assert lease.read_holder(spark, wh).token == won[0].holder.token
        won[0].release()


def test_a_stale_lease_is_taken_over_and_logged(spark, warehouse, caplog) -> None:
    lease.acquire(spark, warehouse, "setup", FAST).release()
    killed = dead_holder("killed nightly", FAST.stale_after_s + 5)
    assert lease._try_insert(spark, warehouse, killed)  # a job that died holding it
    with caplog.at_level(logging.WARNING, logger="vidrec.pipeline.lease"):
        taker = lease.acquire(spark, warehouse, "next nightly", FAST)
    try:
        said = [r.getMessage() for r in caplog.records if "STALE" in r.getMessage()]
        assert said and "job 'killed nightly' (run r-dead, pid 4242 on host-gone)" in said[0], caplog.text
        assert lease.read_holder(spark, warehouse).token == taker.holder.token
        # the dead job, should it wake up, neither heartbeats nor deletes the new holder's row
        assert not lease._try_heartbeat(spark, warehouse, killed, lease._now_us())
        assert not lease._try_delete(spark, warehouse, killed.token)
        assert lease.read_holder(spark, warehouse).token == taker.holder.token
    finally:
        taker.release()
    # a lease just under the timeout is not stale
    assert lease._try_insert(spark, warehouse, dead_holder("slow nightly", FAST.stale_after_s - 20))
    with pytest.raises(lease.WarehouseBusy, match="slow nightly"):
        lease.acquire(spark, warehouse, "next nightly", FAST)


def test_a_holder_that_lost_the_lease_stops(spark, warehouse) -> None:
    held = lease.acquire(spark, warehouse, "frozen", FAST)
    other = lease.Holder("t2", "thief", "r2", "h", 1, lease._now_us(), lease._now_us())
    for _ in range(10):  # another job takes it over (its commit may meet a heartbeat's: try again)
        try:
            assert lease._try_replace(spark, warehouse, held.holder.token, other)
            break
        except Exception as exc:
            if not lease.is_conflict(exc):
                raise
    deadline = time.monotonic() + 600  # its next heartbeat finds out (a MERGE can take long when loaded)
    while held._lost is None and time.monotonic() < deadline:
        time.sleep(0.2)
    with pytest.raises(lease.LeaseLost, match="lost the lease"):
        held.check()
    assert held.release() is False and lease.read_holder(spark, warehouse) == other  # no heartbeat of its own


def test_wait_polls_until_the_holder_releases(spark, warehouse) -> None:
    first = lease.acquire(spark, warehouse, "nightly", FAST)
    threading.Timer(2.0, first.release).start()
    start = time.monotonic()
    second = lease.acquire(spark, warehouse, "forget_user", FAST, wait_s=900)  # MERGEs are slow when loaded
    waited = time.monotonic() - start
    second.release()
    assert 1.5 < waited < 900
    with lease.hold(spark, warehouse, "nightly", FAST):
        start = time.monotonic()
        with pytest.raises(lease.WarehouseBusy, match=r"busy after waiting \d+ s"):
            lease.acquire(spark, warehouse, "forget_user", FAST, wait_s=1.0)
        assert time.monotonic() - start >= 1.0


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda spark, p: Path(p).mkdir(parents=True) or (Path(p) / "x.txt").write_text("x"), "not a Delta"),
        (
            lambda spark, p: spark.createDataFrame([("warehouse", "t")], "lease string, token string")
            .write.format("delta")
            .save(p),
            "missing column",
        ),
        (
            lambda spark, p: lease._row(spark, lease.Holder("t", "j", "r", "h", 1, 0, 0))
            .unionByName(lease._row(spark, lease.Holder("u", "j", "r", "h", 1, 0, 0)))
            .write.format("delta")
            .save(p),
            "2 rows, want at most one",
        ),
        (
            lambda spark, p: lease._row(spark, lease.Holder("t", "j", "r", "h", 1, 0, 0))
            .withColumn("host", F.lit(None).cast("string"))
            .write.format("delta")
            .save(p),
            "empty field(s) host",
        ),
    ],
    ids=["not-delta", "missing-column", "two-rows", "null-host"],
)
def test_a_malformed_lease_is_refused_with_its_own_exit_code(spark, warehouse, make, named) -> None:
    make(spark, lease.lease_path(warehouse))
    with pytest.raises(lease.LeaseMalformed) as err:
        lease.acquire(spark, warehouse, "nightly", FAST)
    assert named in str(err.value) and "is malformed" in str(err.value)
    assert lease.lease_path(warehouse) in str(err.value) and err.value.exit_code == 4


def test_jobs_exit_3_when_busy_and_4_when_malformed(spark, base_conf, warehouse, capsys) -> None:
    """The command line: a stage job refuses at once (3) naming the holder, before writing anything."""
    sets = [
        "spark.master=local[2]",
        f"spark.shuffle_partitions={base_conf.spark.shuffle_partitions}",
        f"spark.checkpoint_dir={base_conf.spark.checkpoint_dir}",
    ]
    args = ["--warehouse", warehouse, "--run-date", "2026-03-10", *[a for s in sets for a in ("--set", s)]]
    with lease.hold(spark, warehouse, "nightly", FAST, run_id="r-night"):
        assert cli.main(["popular", *args]) == 3
        err = capsys.readouterr().err
        assert "is busy" in err and "job 'nightly' (run r-night" in err
        assert cli.main(["popular", *args, "--wait", "-1"]) == 2
    assert not Path(warehouse, "gold").exists()
    spark.createDataFrame([(1,)], "extra int").write.format("delta").mode("append").option(
        "mergeSchema", "true"
    ).save(lease.lease_path(warehouse))
    assert cli.main(["popular", *args]) == 4
    assert "is malformed" in capsys.readouterr().err


def test_a_creation_that_died_half_way_is_refused_after_the_settle_time(spark, warehouse) -> None:
    """Only an empty ``_delta_log``: what another job's creation looks like until it commits."""
    (Path(lease.lease_path(warehouse)) / "_delta_log").mkdir(parents=True)
    start = time.monotonic()
    with pytest.raises(lease.LeaseMalformed, match="could not be created in 2 s") as err:
        lease._ensure_table(spark, warehouse, settle_s=2.0)
    assert time.monotonic() - start >= 2.0 and err.value.exit_code == 4
