"""``emdenoise bench startup``: how long the command line takes before it does any work.

Times ``emdenoise --help``, ``emdenoise models`` and ``emdenoise denoise --help`` as fresh
processes, next to ``python -c pass`` timed in the same run: the ratio to the interpreter's
own start-up is what stays comparable across machines and loads (issue 20, item 2 asks
for ``--help`` <= 0.5 s). The commands run round-robin, so a busy neighbour slows every
row alike, and the median of ``--runs`` is reported.

``--against DIR`` adds the same rows for another source tree (the ``python/`` folder of a
checkout of an older commit, e.g. a ``git worktree``), run with the same interpreter and
``PYTHONPATH=DIR``: before and after in one run. Every command runs as ``python -m
emdenoise`` so both trees are started the same way.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: The interpreter's own start-up, timed once per run.
PYTHON = ("python -c pass", ("-c", "pass"))
#: What is timed for each source tree: a label and the arguments after ``python``.
COMMANDS = (
    ("emdenoise --help", ("-m", "emdenoise", "--help")),
    ("emdenoise models", ("-m", "emdenoise", "models")),
    ("emdenoise denoise --help", ("-m", "emdenoise", "denoise", "--help")),
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "startup",
        help="median wall time of 'emdenoise --help', 'models' and 'denoise --help' against 'python -c pass'",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--runs", type=int, default=7, help="runs of each command (default: 7); the median is reported")
    p.add_argument("--against", type=Path, action="append", default=[], metavar="DIR",
                   help="also time the emdenoise source tree in DIR (a checkout's python/ folder); repeatable")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


def time_command(argv: list[str], env: dict) -> float:
    """Wall seconds of one run of ``argv`` (output discarded); a failed run is a UserError."""
    from emdenoise.errors import UserError

    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise UserError(f"'{' '.join(argv)}' failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return elapsed


def measure(trees: dict[str, str | None], runs: int) -> list[dict]:
    """Median and minimum wall time of each command under each tree, round-robin.

    Parameters
    ----------
    trees : dict
        Label -> ``PYTHONPATH`` for that tree (``None``: the installed package).
    runs : int
        Runs of every command.

    Returns
    -------
    list of dict
        One row for ``python -c pass`` (tree ``-``), then one per tree and command:
        ``tree``, ``command``, ``median_s``, ``min_s`` and ``over_python`` (median over
        the median of ``python -c pass``).
    """
    jobs = [("-", PYTHON[0], [sys.executable, *PYTHON[1]], dict(os.environ))]
    for tree, path in trees.items():
        env = dict(os.environ)
        if path is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
        jobs += [(tree, label, [sys.executable, *args], env) for label, args in COMMANDS]
    times: dict[tuple[str, str], list[float]] = {(tree, label): [] for tree, label, _, _ in jobs}
    for _ in range(runs):
        for tree, label, argv, env in jobs:
            times[tree, label].append(time_command(argv, env))
    python = statistics.median(times["-", PYTHON[0]])
    return [
        {
            "tree": tree,
            "command": label,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "over_python": statistics.median(values) / python,
        }
        for (tree, label), values in times.items()
    ]


def format_table(rows: list[dict], runs: int) -> str:
    """A Markdown table of :func:`measure`'s rows."""
    lines = [
        f"| tree | command | median s ({runs} runs) | min s | x python -c pass |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['tree']} | {row['command']} | {row['median_s']:.3f} | {row['min_s']:.3f} "
                     f"| {row['over_python']:.1f} |")
    return "\n".join(lines)


def run(args) -> int:
    from emdenoise.errors import UserError

    if args.runs < 1:
        raise UserError(f"--runs must be >= 1, got {args.runs}.")
    trees: dict[str, str | None] = {"installed": None}
    for folder in args.against:
        if not (folder / "emdenoise" / "__main__.py").is_file():
            raise UserError(f"{folder} holds no emdenoise package; name a checkout's python/ folder.")
        trees[str(folder)] = str(folder.resolve())
    rows = measure(trees, args.runs)
    print(format_table(rows, args.runs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "python": sys.executable, "rows": rows}, indent=2))
    return 0
