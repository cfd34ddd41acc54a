"""Run the evaluation notebooks headless and keep the committed ones free of outputs.

``python -m hpaseg.notebook run NB.ipynb -p NAME VALUE ... [--out OUT.ipynb]`` executes a
notebook with nbclient, papermill-style: the cell tagged ``parameters`` gets the given
values in place of its defaults (each ``VALUE`` is read as a Python literal, else
taken as a string). A cell that raises stops the run with exit code 1; ``--out``
keeps the executed notebook, figures included.

``python -m hpaseg.notebook strip NB.ipynb ...`` removes outputs, execution counts and
execution metadata in place (atomically), so the committed notebooks diff cleanly;
``python -m hpaseg.notebook check NB.ipynb ...`` exits 1 if any still carries them.
"""

from __future__ import annotations

import ast
import copy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ..errors import InputError
from ..io import atomic_write
from .base import ArgumentParser, cli_entry

__all__ = [
    "PARAMETERS_TAG",
    "parameters_cell",
    "inject_parameters",
    "strip_outputs",
    "output_problems",
    "read_notebook",
    "execute_notebook",
    "build_parser",
    "main",
]

#: Tag of the cell holding a notebook's parameters (papermill's convention).
PARAMETERS_TAG = "parameters"
#: Seconds one cell may run before the execution is stopped.
CELL_TIMEOUT_S = 1800


def parameters_cell(nb: Any) -> int:
    """Index of the code cell tagged ``parameters``.

    Raises
    ------
    InputError
        When no cell, or more than one, carries the tag.
    """
    found = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if len(found) != 1:
        raise InputError(f"notebook has {len(found)} code cells tagged {PARAMETERS_TAG!r}; expected exactly one")
    return found[0]


def inject_parameters(nb: Any, params: Mapping[str, Any]) -> Any:
    """A copy of ``nb`` whose parameters cell assigns ``params`` instead of its defaults.

    Each parameter must already be assigned at the top level of the parameters cell
    (so a misspelt name is an error, not a silently ignored value); the lines of that
    assignment are replaced by ``NAME = repr(value)``, the rest of the cell is kept.

    Examples
    --------
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("A = 1  # one\\nB = 'x'", metadata={"tags": ["parameters"]})])
    >>> print(inject_parameters(nb, {"B": [1, 2]}).cells[0].source)
    A = 1  # one
    B = [1, 2]  # injected
    >>> inject_parameters(nb, {"C": 3})
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: parameter 'C' is not assigned in the parameters cell; expected one of A, B
    """
    nb = copy.deepcopy(nb)
    cell = nb.cells[parameters_cell(nb)]
    lines = cell.source.split("\n")
    spans: dict[str, tuple[int, int]] = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            spans[node.targets[0].id] = (node.lineno - 1, node.end_lineno or node.lineno)
    for name in params:
        if name not in spans:
            raise InputError(
                f"parameter {name!r} is not assigned in the parameters cell; expected one of {', '.join(spans)}"
            )
    for name, (start, end) in sorted(((n, spans[n]) for n in params), key=lambda kv: -kv[1][0]):
        lines[start:end] = [f"{name} = {params[name]!r}  # injected"]
    cell.source = "\n".join(lines)
    return nb


def strip_outputs(nb: Any) -> Any:
    """A copy of ``nb`` without outputs, execution counts or execution metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def output_problems(nb: Any) -> list[str]:
    """What keeps ``nb`` from being committed: one line per cell with outputs or an
    execution count (empty when the notebook is clean)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: execution count {cell.execution_count}")
    return problems


def read_notebook(path: str | Path) -> Any:
    """Read and validate a notebook (nbformat 4)."""

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such notebook")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError) as exc:
        raise InputError(f"{path}: not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    return nb


def execute_notebook(
    path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    timeout_s: int = CELL_TIMEOUT_S,
    kernel_name: str = "python3",
    cwd: str | Path | None = None,
) -> Any:
    """Execute a notebook headless with nbclient, parameters injected.

    Parameters
    ----------
    path : path
    params : mapping, optional
        Values for the parameters cell (:func:`inject_parameters`).
    timeout_s : int
        Limit for one cell.
    kernel_name : str
        Jupyter kernel; ``python3`` is the Python running this function when
        ipykernel is installed in its environment.
    cwd : path, optional
        Working folder of the kernel (default: the notebook's folder, as Jupyter does).

    Returns
    -------
    NotebookNode
        The executed notebook, outputs included.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        When a cell raises; its message holds the cell's traceback.
    """

    path = Path(path)
    nb = read_notebook(path)
    if params:
        nb = inject_parameters(nb, params)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd or path.parent)}}
    )
    client.execute()
    return nb


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_parser() -> ArgumentParser:
    """Command-line options of ``python -m hpaseg.notebook``."""
    parser = ArgumentParser(
        prog="hpaseg notebook", description="Run notebooks headless with parameters; strip or check their outputs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a notebook (papermill-style parameters)")
    run.add_argument("notebook")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter; VALUE is a Python literal or else a string",
    )
    run.add_argument("--out", help="write the executed notebook here (with its outputs)")
    run.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT_S, help=f"seconds one cell may run (default {CELL_TIMEOUT_S})"
    )
    strip = sub.add_parser("strip", help="remove outputs and execution counts in place")
    strip.add_argument("notebooks", nargs="+")
    check = sub.add_parser("check", help="exit 1 if a notebook carries outputs or execution counts")
    check.add_argument("notebooks", nargs="+")
    return parser


@cli_entry("notebook", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m hpaseg.notebook``."""

    args = build_parser().parse_args(argv)
    if args.command == "run":
        params = {name: _literal(value) for name, value in args.param}
        try:
            nb = execute_notebook(args.notebook, params, timeout_s=args.timeout)
        except CellExecutionError as exc:
            print(f"hpaseg notebook: a cell of {args.notebook} failed:\n{exc}", file=sys.stderr)
            return 1
        if args.out:
            with atomic_write(args.out, "w") as fh:
                nbformat.write(nb, fh)
        print(f"ran {args.notebook}" + (f" -> {args.out}" if args.out else ""))
        return 0
    if args.command == "strip":
        for path in args.notebooks:
            nb = strip_outputs(read_notebook(path))
            with atomic_write(path, "w") as fh:
                nbformat.write(nb, fh)
            print(f"stripped {path}")
        return 0
    dirty = 0
    for path in args.notebooks:
        for problem in output_problems(read_notebook(path)):
            print(f"{path}: {problem}")
            dirty += 1
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
