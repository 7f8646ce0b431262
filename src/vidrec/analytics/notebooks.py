"""Running the analysts' notebooks headless, and the few helpers the notebooks share.

``execute_notebook`` injects parameters after the cell tagged ``parameters`` (as papermill does,
without depending on papermill) and executes the notebook with ``nbclient`` on a kernel that runs
this very interpreter (``sys.executable``), so a notebook sees the same virtual environment, and
the same ``vidrec``, as the process that runs it, whatever kernel specs the machine has installed.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
KERNEL_NAME = "python3"


def _declared_names(source: str) -> set[str]:
    """Names assigned at top level in the source of the ``parameters`` cell."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _literal(value: Any) -> str:
    """Python source of ``value`` (dates and paths become strings)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return repr(value.isoformat())
    if isinstance(value, Path):
        return repr(str(value))
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise TypeError(f"parameter value {value!r} is not a Python literal") from exc
    return text


def inject_parameters(nb: Any, parameters: Mapping[str, Any], name: str = "notebook") -> Any:
    """Insert a cell assigning ``parameters`` right after the cell tagged ``parameters``.

    A cell tagged ``injected-parameters`` from an earlier injection is replaced.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The notebook (modified in place and returned).
    parameters : Mapping
        Name -> value; values must be Python literals (dates and paths are passed as strings).
    name : str
        The notebook's name, for error messages.

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    ValueError
        When the notebook has no ``parameters`` cell, or a parameter is not declared in it.
    """
    import nbformat

    cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    index = next(
        (i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None
    )
    if index is None:
        raise ValueError(f"{name}: no cell tagged '{PARAMETERS_TAG}' to inject parameters after")
    declared = _declared_names(cells[index].source)
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ValueError(
            f"{name}: parameter '{unknown[0]}' is not declared in the parameters cell "
            f"(declared: {', '.join(sorted(declared))})"
        )
    source = "# Parameters\n" + "".join(f"{k} = {_literal(v)}\n" for k, v in parameters.items())
    injected = nbformat.v4.new_code_cell(source=source, metadata={"tags": [INJECTED_TAG]})
    nb.cells = [*cells[: index + 1], injected, *cells[index + 1 :]]
    return nb


def _write_kernel_spec(folder: Path) -> None:
    """A ``python3`` kernel spec whose interpreter is the current one (``sys.executable``)."""
    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.prefix})",
        "language": "python",
        "env": {"MPLBACKEND": "Agg"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def execute_notebook(
    path: str | Path,
    parameters: Mapping[str, Any] | None = None,
    timeout: int = 600,
    output_path: str | Path | None = None,
    cwd: str | Path | None = None,
) -> Any:
    """Execute the notebook at ``path`` with ``parameters`` injected; return the executed notebook.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file (never modified).
    parameters : Mapping, optional
        Values injected after the ``parameters`` cell (see ``inject_parameters``).
    timeout : int
        Seconds allowed per cell.
    output_path : str or Path, optional
        Where to write the executed notebook (with outputs).
    cwd : str or Path, optional
        Working directory of the kernel (default: the current one, so relative warehouse paths
        mean what they mean to the caller).

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        On a bad parameter (see ``inject_parameters``).
    nbclient.exceptions.CellExecutionError
        When a cell raises; the message holds the cell and the traceback.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    if timeout < 1:
        raise ValueError(f"timeout must be >= 1 second, got {timeout}")
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {}, name=path.name)
    workdir = str(Path(cwd) if cwd is not None else Path.cwd())
    with tempfile.TemporaryDirectory(prefix="vidrec-kernel-") as kernels:
        _write_kernel_spec(Path(kernels))
        km = AsyncKernelManager(
            kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels])
        )
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": workdir}},
        )
        try:
            # our own kernel manager: nbclient leaves such a kernel running (and the Spark JVM it
            # started) unless told to clean up
            client.execute(cleanup_kc=True)
        finally:
            if output_path is not None:
                nbformat.write(nb, str(output_path))
    return nb


# --- helpers the notebooks import -----------------------------------------------------------------
def latest_run_date(spark: Any, table: str) -> dt.date | None:
    """The latest ``run_date`` in the catalog table ``table`` (None when it is empty or absent)."""
    if not spark.catalog.tableExists(table):
        return None
    row = spark.sql(f"SELECT max(run_date) AS d FROM {table}").first()
    return None if row is None else row["d"]


def show(fig: Any) -> None:
    """Display a matplotlib figure as a PNG output (works on the Agg backend), then close it."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buffer.getvalue()))
