"""Bytes of ingest's cached event batch: raw text on every record vs only where a record is rejectable.

    .venv/bin/python bench/ingest_cache_size.py data/bench/5m [out.json]

Caches ``rank_copies(tag_events(events))`` of the raw folder's events as ingest does, counts it, and
reads Spark's storage info; then the same with ``ingest.drop_unneeded_raw``. Prints and writes JSON.
"""

import datetime as dt
import json
import sys
import time

from vidrec.config import load_config
from vidrec.data import ingest
from vidrec.data import raw as rawio
from vidrec.pipeline.session import build_spark

raw_dir = sys.argv[1]
out_path = sys.argv[2] if len(sys.argv) > 2 else "ingest_cache_size.json"
conf = load_config(None, ["spark.shuffle_partitions=8"])
spark = build_spark(conf)
sources = rawio.discover(raw_dir)
events = rawio.read_entity(spark, sources, "events")
run_date = dt.date(2026, 3, 31)
now = dt.datetime(2026, 4, 1)
out = {}
for label in ("raw on every record", "raw only where rejectable"):
    ranked = ingest.rank_copies(ingest.tag_events(events, now, conf["ingest"]), run_date)
    if label.startswith("raw only"):
        ranked = ingest.drop_unneeded_raw(ranked)
    df = ranked.cache()
    t = time.perf_counter()
    n = df.count()
    secs = time.perf_counter() - t
    infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
    mem = sum(i.memSize() for i in infos)
    disk = sum(i.diskSize() for i in infos)
    out[label] = {
        "rows": n,
        "mem_bytes": mem,
        "disk_bytes": disk,
        "bytes_per_event": round((mem + disk) / n, 1),
        "count_s": round(secs, 1),
    }
    print(label, out[label], flush=True)
    df.unpersist(blocking=True)
with open(out_path, "w") as fh:
    json.dump(out, fh, indent=1)
spark.stop()
