"""bench/run.py's pure parts: stage-time parsing, NDCG@10, the headline keys, and the generated report.

The timed parts are never asserted on; `make bench-quick` runs the whole suite at a tiny size.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_stage_times(bench):
    text = "noise\nStage times: ingest 570.9s, matrix 268.9s, evaluate 12.0s\nmore"
    assert bench.parse_stage_times(text) == {"ingest": 570.9, "matrix": 268.9, "evaluate": 12.0}
    assert bench.parse_stage_times("no summary") == {}


def test_ndcg_at_k_by_hand(bench):
    # 2 users x 4 items, rank 1: user 0 ranks items 3 > 2 > 1 > 0, user 1 the reverse
    users = np.array([[1.0], [-1.0]], np.float32)
    items = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)
    train = (np.array([0]), np.array([3]))  # user 0 has item 3 in training: excluded
    test = (np.array([0, 0, 1]), np.array([1, 0, 3]))
    got = bench.ndcg_at_k(users, items, train, test, k=2)
    # user 0 ranks 2, 1: hit at position 2 -> (1/log2(3)) / (1 + 1/log2(3)); user 1 ranks 0, 1: miss, miss
    u0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got == pytest.approx((u0 + 0.0) / 2)


def test_headline_and_a_report_generated_whole(bench, tmp_path):
    def size(wall):
        return {"nightly": {"wall_seconds": wall}}

    results = {"sizes": {"1m": size(100.0), "5m": size(250.0), "20m": size(1000.0)}}
    results["sizes"]["20m"].update(
        {
            "topn": {"topn_speedup_vs_recommendForAllUsers": 3.5, "topn_time_vs_gemm_floor": 1.8},
            "loader": {"loader_rate_vs_pyarrow": 0.7},
            "als": {"als_iteration_time_vs_implicit": 6.0},
        }
    )
    h = bench.headline(results)
    assert h == {
        "largest_size": "20m",
        "topn_speedup_vs_recommendForAllUsers": 3.5,
        "topn_time_vs_gemm_floor": 1.8,
        "loader_rate_vs_pyarrow": 0.7,
        "als_iteration_time_vs_implicit": 6.0,
        "nightly_time_ratio_5m_over_1m": 2.5,
        "nightly_time_ratio_20m_over_5m": 4.0,
    }
    md = tmp_path / "BENCHMARKS.md"
    hand = "## Fast paths: what each change gained\n\nnotes\n\n## Recommendation quality\n\ntable\n"
    md.write_text("# Benchmarks\n\nold numbers\n\n" + hand)
    machine = {
        "cores": 2,
        "cpu": "x",
        "memory_gib": 1.0,
        "python": "3",
        "java": "17",
        "pyspark": "4",
        "torch": "2",
        "numpy": "1",
        "pyarrow": "14",
        "implicit": "0.7.3",
        "load_average_at_start": [0.0, 0.0, 0.0],
        "date": "d",
    }
    spec = {"users": 1, "items": 1}
    report = {"machine": machine, "headline": {"largest_size": "1m"}, "sizes": {"1m": {"spec": spec}}}
    bench.write_report(report, tmp_path / "results.json", md)
    text = md.read_text()
    assert "old numbers" not in text
    # generated whole from the results: no hand-written section of the old file survives
    assert "notes" not in text and "## Fast paths" not in text and "## Recommendation quality" not in text
    assert text == bench.render_report(report)
    assert text.rstrip("\n").endswith(bench.DOCS_LINE)
    assert (tmp_path / "results.json").exists()


def test_earlier_sizes_are_kept_but_never_ratioed_across_runs(bench):
    old = {
        "machine": {"date": "2026-11-01"},
        "sizes": {"1m": {"nightly": {"wall_seconds": 100.0}}, "5m": {"nightly": {"wall_seconds": 999.0}}},
    }
    new = {
        "machine": {"date": "2026-11-28"},
        "sizes": {
            "5m": {"nightly": {"wall_seconds": 200.0}, "run": "2026-11-28"},
            "20m": {"nightly": {"wall_seconds": 700.0}, "run": "2026-11-28"},
        },
        "sizes_run": ["5m", "20m"],
    }
    assert bench.carry_earlier(new, old) == ["1m"]  # 5m of this run wins over the old 5m
    assert list(new["sizes"]) == ["1m", "5m", "20m"]
    assert new["sizes"]["1m"]["run"] == "2026-11-01"
    assert new["sizes"]["5m"]["nightly"]["wall_seconds"] == 200.0
    h = bench.headline(new)
    assert h["nightly_time_ratio_20m_over_5m"] == 3.5
    assert "nightly_time_ratio_5m_over_1m" not in h  # 1m came from another run
    lines = bench._earlier_runs(new)
    assert "1m from the run of 2026-11-01" in lines[0] and "5m, 20m" in lines[0]


def test_skipped_sections_are_kept_with_their_run(bench):
    old = {
        "machine": {"date": "2026-11-01"},
        "sizes": {
            "5m": {"nightly": {"wall_seconds": 100.0}, "run": "2026-11-01"},
            "20m": {
                "nightly": {"wall_seconds": 999.0},
                "topn": {"topn_speedup_vs_recommendForAllUsers": 5.0, "topn_time_vs_gemm_floor": 1.4},
            },
        },
    }
    new = {
        "machine": {"date": "2026-11-28"},
        "sizes": {"20m": {"nightly": {"wall_seconds": 700.0}, "run": "2026-11-28"}},
        "sizes_run": ["20m"],
    }
    assert bench.carry_earlier(new, old) == ["5m", "20m:topn"]
    assert new["sizes"]["20m"]["nightly"]["wall_seconds"] == 700.0  # this run's nightly wins
    assert new["sizes"]["20m"]["topn"]["run"] == "2026-11-01"
    h = bench.headline(new)
    assert h["topn_speedup_vs_recommendForAllUsers"] == 5.0
    assert "nightly_time_ratio_20m_over_5m" not in h  # the 5m nightly came from another run
    line = bench._earlier_runs(new)[0]
    assert "5m from the run of 2026-11-01" in line and "20m topn from the run of 2026-11-01" in line
    # a nightly carried into a size of this run is not ratioed against this run's nightly either
    again = {
        "machine": {"date": "2026-11-28"},
        "sizes": {
            "5m": {"nightly": {"wall_seconds": 100.0}, "run": "2026-11-28"},
            "20m": {"run": "2026-11-28"},
        },
    }
    bench.carry_earlier(
        again, {"machine": {"date": "2026-11-01"}, "sizes": {"20m": {"nightly": {"wall_seconds": 1.0}}}}
    )
    assert "nightly_time_ratio_20m_over_5m" not in bench.headline(again)


def test_kept_results_name_the_cpu_of_the_run_that_measured_them(bench):
    """The machine changes between sessions: a kept size or section says which CPU measured it, taken from
    what it recorded, else from the earlier file's machine when it is that file's own run."""
    old = {  # run B (EPYC) measured 1m; it had kept 5m from run A (Xeon) and 20m from a run before CPUs
        "machine": {"date": "2026-12-07", "cpu": "AMD EPYC"},
        "sizes": {
            "1m": {"nightly": {"wall_seconds": 100.0}, "run": "2026-12-07"},
            "5m": {"nightly": {"wall_seconds": 300.0}, "run": "2026-12-06", "cpu": "Intel Xeon"},
            "20m": {"nightly": {"wall_seconds": 900.0}, "run": "2026-11-01"},
        },
    }
    new = {  # run C measured only 1m's full nightly
        "machine": {"date": "2026-12-08", "cpu": "Xeon 2.8"},
        "sizes": {
            "1m": {
                "full_nightly": {"second_night_time_vs_first": 0.3},
                "run": "2026-12-08",
                "cpu": "Xeon 2.8",
            }
        },
        "sizes_run": ["1m"],
    }
    assert bench.carry_earlier(new, old) == ["5m", "20m", "1m:nightly"]
    R = new["sizes"]
    assert (R["1m"]["nightly"]["cpu"], R["5m"]["cpu"], R["20m"]["cpu"]) == ("AMD EPYC", "Intel Xeon", None)
    assert R["1m"]["cpu"] == "Xeon 2.8"  # this run's own result keeps this run's CPU
    line = bench._earlier_runs(new)[0]
    assert "5m from the run of 2026-12-06 (Intel Xeon)" in line
    assert "20m from the run of 2026-11-01 (CPU not recorded)" in line
    assert "1m nightly from the run of 2026-12-07 (AMD EPYC)" in line
    # carried again by a later run, each keeps the CPU it has now recorded
    later = {"machine": {"date": "2026-12-09", "cpu": "Other"}, "sizes": {}, "sizes_run": []}
    bench.carry_earlier(later, {"machine": new["machine"], "sizes": R})
    assert (later["sizes"]["5m"]["cpu"], later["sizes"]["1m"]["nightly"]["cpu"]) == ("Intel Xeon", "AMD EPYC")
    assert later["sizes"]["1m"]["cpu"] == "Xeon 2.8"


def test_a_carried_nightly_keeps_its_warehouse_facts_and_a_carried_deep_section_renders(bench):
    """A run of the full nightly alone (``make bench-nightly``) keeps the size's earlier bench nightly
    with the numbers read from its warehouse; the deep table skips the ``run`` a carried section holds."""
    old = {
        "machine": {"date": "2026-11-01"},
        "sizes": {
            "1m": {
                "nightly": {"wall_seconds": 100.0},
                "events": 998,
                "interactions": 250,
                "deep": {
                    "ncf": {"rows_per_s_per_process": 1000, "processes": 2, "epochs": 2, "fit_seconds": 9}
                },
            }
        },
    }
    new = {
        "machine": {"date": "2026-11-28"},
        "sizes": {"1m": {"full_nightly": {"second_night_time_vs_first": 0.3}, "run": "2026-11-28"}},
        "sizes_run": ["1m"],
    }
    assert bench.carry_earlier(new, old) == ["1m:nightly", "1m:deep"]
    assert (new["sizes"]["1m"]["events"], new["sizes"]["1m"]["interactions"]) == (998, 250)
    assert new["sizes"]["1m"]["deep"]["run"] == "2026-11-01"
    lines = bench.deep_section(new["sizes"], ["1m"])
    assert lines[-1] == "| ncf | 1,000 | 2 | 2 | 9 |" and "run" not in lines[-1]


def test_run_time_table_and_unmeasured_filtered_topn(bench):
    results = {
        "total_seconds": 3000.0,
        "sizes_run": ["1m", "20m"],
        "sizes": {
            "1m": {"bench_seconds": {"generate": 30.0, "nightly": 400.0, "deep": 300.0}},
            "5m": {"bench_seconds": {"nightly": 1.0}},  # carried from another run: not this run's time
            "20m": {"bench_seconds": {"nightly": 1500.0, "topn": 120.5}},
        },
    }
    lines = bench._run_time(results)
    assert "**50.0 min**" in lines[2]
    rows = [ln for ln in lines if ln.startswith("| 1m") or ln.startswith("| 20m") or ln.startswith("| 5m")]
    assert rows == [
        "| 1m | 30.0 | 400.0 | – | – | – | – | – | 300.0 | 730.0 |",
        "| 20m | – | 1,500.0 | – | – | – | 120.5 | – | – | 1,620.5 |",
    ]
    assert bench._run_time({"sizes": {}}) == []
    assert bench._fmt_x(None) == "–" and bench._fmt_x(2.5) == "2.5x"


def test_the_gpu_section_says_not_measured_until_a_gpu_check_is_folded_in(bench):
    text = "\n".join(bench.gpu_section(None))
    assert "Not measured" in text and bench.GPU_COMMAND in text and bench.GPU_FOLD in text
    gpu = {"environment": {"gpu": "H"}, "mode": "gpu", "seconds": 1.0}
    new, old = {"machine": {"date": "d2"}, "sizes": {}}, {"machine": {"date": "d1"}, "sizes": {}, "gpu": gpu}
    assert bench.carry_earlier(new, old) == ["gpu"] and new["gpu"] == gpu  # kept until measured again


@pytest.mark.slow
def test_gpu_check_runs_every_path_on_cpu_without_spark_and_folds_into_the_report(bench, tmp_path):
    """bench/gpu_check.sh --cpu-only --small: the top-N kernel and torchrun DDP, with pyspark, py4j and
    petastorm made unimportable (as on the GPU box); its JSON renders in BENCHMARKS.md's GPU section."""
    import json
    import os
    import subprocess
    import sys

    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pyspark', 'py4j', 'petastorm', 'delta'):\n"
        "            raise ImportError('blocked on the GPU box: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(block)}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--cpu-only", "--small"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    topn = result["topn"]
    assert topn["check"]["passed"] and topn["check"]["seen_items_in_lists"] == 0
    assert topn["cpu"]["seconds"] > 0 and "cuda" not in topn
    ddp = result["ddp"]["cpu_gloo_2proc"]
    assert "error" not in ddp, ddp
    assert ddp["backend"] == "gloo" and ddp["processes"] == 2
    assert ddp["rows_per_epoch"] == result["ddp"]["train_rows"]  # every row read once across ranks
    text = "\n".join(bench.gpu_section(result))
    assert "Not measured" not in text and "| cpu_gloo_2proc | 2 | gloo |" in text
    assert "| CPU, " in text and "passed" in text


@pytest.mark.slow  # spawns two torch processes: ~30 s on a loaded 2-core machine
def test_the_fair_topn_floor_times_both_setups_and_the_output_check_catches_a_seen_item(bench):
    import pandas as pd

    tf = bench.bench_module("topn_floor")
    rng = np.random.default_rng(1)
    n_users, n_items, n = 300, 200, 10
    U = rng.standard_normal((n_users, 8), dtype=np.float32)
    V = rng.standard_normal((n_items, 8), dtype=np.float32)
    users = np.repeat(np.arange(n_users), 5)
    indptr, cols = tf.seen_csr(users, rng.integers(0, n_items, len(users)), n_users)
    fl = tf.floor(U, V, indptr, cols, n, repeats=1)
    for setup in ("1x2", "2x1"):
        assert set(fl[setup]) == set(tf.VARIANTS) and all(v["block_rows"] >= 32 for v in fl[setup].values())
    assert fl["floor_gemm_topk"]["setup"] in ("1x2", "2x1")
    # brute-force lists pass the check; one seen item swapped in fails it
    user_ids, item_ids = np.arange(n_users) + 1000, np.arange(n_items) + 7
    rows = []
    for u in range(n_users):
        s = U[u] @ V.T
        s[cols[indptr[u] : indptr[u + 1]]] = -np.inf
        top = np.argsort(-s)[:n]
        rows += [(user_ids[u], item_ids[j], float(s[j]), r + 1) for r, j in enumerate(top)]
    recs = pd.DataFrame(rows, columns=["user_idx", "item_idx", "score", "rank"])
    sample = np.arange(0, n_users, 7)
    ok = tf.check_output(recs, U, V, user_ids, item_ids, indptr, cols, n, len(recs), sample)
    assert ok["passed"] and ok["rows"] == ok["rows_expected"] == n_users * n
    bad = recs.copy()
    bad.loc[0, "item_idx"] = item_ids[cols[indptr[0]]]  # user 0's first list entry: an item it has seen
    got = tf.check_output(bad, U, V, user_ids, item_ids, indptr, cols, n, len(bad), sample)
    assert not got["passed"] and got["seen_items_in_lists"] == 1


def test_loader_fair_compares_both_readers_and_the_fair_baseline_interleaved(bench, tmp_path):
    lf = bench.bench_module("loader_fair")
    lf.write_random_shards(str(tmp_path), 10_000, rows_per_group=2_048)
    out = lf.compare(str(tmp_path), 10_000, [64], repeats=2)
    for shuffle in (False, True):
        case = out[f"batch=64,shuffle={shuffle}"]
        for side in ("fair_pyarrow", "pyarrow", "petastorm"):
            assert len(case[side]["runs"]) == 2 and case[side]["min"] <= case[side]["seconds"]
        assert case["pyarrow_vs_fair"] > 0 and case["petastorm_vs_fair"] > 0
    assert out["rows"] == 10_000 and out["cores"] == os.cpu_count()


def test_the_full_nightly_section_and_its_headline_keys(bench):
    log = (
        "x INFO recommend: als fitted and listed in 12.5 s\n"
        "y INFO recommend: ncf fitted and listed in 40.0 s\nrecommend: hybrid blended in 3.0 s\n"
    )
    assert bench.parse_model_times(log) == {
        "recommend:als": 12.5,
        "recommend:ncf": 40.0,
        "recommend:hybrid": 3.0,
    }

    def night(date, wall):
        return {"run_date": date, "wall_seconds": wall, "cpu_seconds": 2 * wall, "peak_rss_gib": 3.0,
                "stages": {"ingest": 1.0}, "models": {"recommend:ncf": 40.0}}  # fmt: skip

    full = {"first": night("2026-03-30", 600.0), "second": night("2026-03-31", 150.0)}
    full["second_night_time_vs_first"] = 0.25
    results = {"sizes": {"1m": {"full_nightly": full}, "5m": {"full_nightly": full}}}
    h = bench.headline(results)
    assert h["full_nightly_seconds_5m"] == 600.0 and h["second_night_time_vs_first"] == 0.25
    assert h["second_night_size"] == "5m"
    text = "\n".join(bench.full_nightly_section(results["sizes"], ["1m", "5m"]))
    assert "| 5m | second (2026-03-31) | 150.0 | 300.0 | 3.0 | ingest 1 | recommend: ncf 40 |" in text
    assert "| 5m | second / first | 0.25 |" in text


def test_day_drop_keeps_the_catalog_and_the_days_events_byte_for_byte(bench, tmp_path):
    import datetime as dt

    raw = tmp_path / "raw"
    (raw / "events.jsonl").mkdir(parents=True)
    day = b'{"event_id":"a","ts":"2026-03-31T10:00:00Z"}\n'
    bad = b'{"event_id":"b","ts":"2026-03-31T11:00:00Z","device":"\xff"}\n'  # invalid UTF-8 kept as is
    other = b'{"event_id":"c","ts":"2026-03-30T23:59:59Z"}\n'
    (raw / "events.jsonl" / "part-00000.json").write_bytes(day + other)
    (raw / "events.jsonl" / "part-00001.json").write_bytes(bad)
    (raw / "events.jsonl" / "_SUCCESS").write_bytes(b"")
    (raw / "items.jsonl").write_text('{"item_id":"i1"}\n')
    (raw / "users.csv").write_text("user_id\nu1\n")
    out = bench.day_drop(raw, dt.date(2026, 3, 31), tmp_path / "drop")
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "items.jsonl", "users.csv"]
    assert (out / "events.jsonl").read_bytes() == day + bad
    assert (out / "items.jsonl").read_text() == '{"item_id":"i1"}\n'
    with pytest.raises(SystemExit, match="no event dated 2026-04-01"):
        bench.day_drop(raw, dt.date(2026, 4, 1), tmp_path / "none")
