"""What a Spark master URL and resource settings say about scheduling, read before Spark starts.

A task that asks for a custom resource (``spark.task.resource.gpu.amount: 1``) only runs on an
executor that offers it. A local master (``local``, ``local[4]``, ``local[*]``) offers none, so a job
whose tasks ask for a GPU there never starts a task, and Spark reports nothing: the run hangs. These
pure functions (no Spark import) let the preflight refuse that case, and the first-job watchdog name
the setting when a cluster cannot run the tasks either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_LOCAL = re.compile(r"^local(?:\[\s*(\*|\d+)\s*(?:,\s*\d+\s*)?\])?$")
_TASK_RESOURCE = re.compile(r"^spark\.task\.resource\.([^.]+)\.amount$")


def local_task_slots(master: str | None, task_cpus: int = 1) -> int | None:
    """Tasks a local master runs at once (``local``: 1, ``local[4]``: 4, ``local[*]``: the cores), each
    task taking ``task_cpus`` cores; ``None`` when ``master`` is not a local master."""
    match = _LOCAL.match((master or "").strip())
    if not match:
        return None
    cores = match.group(1)
    n = (os.cpu_count() or 1) if cores == "*" else int(cores or 1)
    return max(n // max(task_cpus, 1), 0)


def task_resource_requests(settings: Mapping[str, str]) -> dict[str, str]:
    """The ``spark.task.resource.<name>.amount`` settings that ask each task for more than nothing."""
    out = {}
    for key, value in settings.items():
        if _TASK_RESOURCE.match(key):
            try:
                wanted = float(value) > 0
            except ValueError:
                wanted = True  # Spark will refuse it itself; never hide it
            if wanted:
                out[key] = str(value)
    return dict(sorted(out.items()))


def resource_name(key: str) -> str:
    """``gpu`` for ``spark.task.resource.gpu.amount``."""
    match = _TASK_RESOURCE.match(key)
    return match.group(1) if match else key


#: What to use instead of GPU requests where no executor offers GPUs.
CPU_LAYER_ADVICE = (
    "on a machine or cluster without GPUs use conf/cluster-cpu.yaml (no GPU requests); conf/cluster.yaml "
    "is for clusters whose executors offer GPUs"
)
