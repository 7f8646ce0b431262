"""spark-submit entry point: the 'nightly' stage(s). Same flags as every job; see `vidrec nightly -h`."""

import os
import sys


def _no_vidrec(exc: ModuleNotFoundError, prog: str) -> int:
    """Without vidrec importable, say which wheel is missing (spark-submit --py-files puts it first on
    PYTHONPATH) in one line, exit code 2: nothing ran."""
    if exc.name != "vidrec":
        raise exc
    wheels = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p.endswith((".whl", ".zip"))]
    missing = [os.path.abspath(p) for p in wheels if not os.path.isfile(p)]
    where = f"no wheel at {missing[0]} (spark-submit --py-files)" if missing else "no vidrec on sys.path"
    print(
        f"{prog}: cannot import vidrec: {where}; build it with `pip wheel --no-deps -w dist .`",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    try:
        from vidrec.cli.stages import run_stages
    except ModuleNotFoundError as exc:
        sys.exit(_no_vidrec(exc, "vidrec nightly"))
    sys.exit(run_stages("nightly", sys.argv[1:]))
