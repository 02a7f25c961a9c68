"""``emdenoise fiji launch``: ImageJ or Fiji started by this Python, EM commands served in-process.

``emdenoise fiji launch``                      ImageJ1 window (Debian's ij.jar), Plugins > emdenoise
``emdenoise fiji launch --fiji Fiji.app``      the lab's own Fiji, through pyimagej
``emdenoise fiji launch --batch M.ijm --arg A``  run a macro in batch mode and exit (needs a display
                                               for ImageJ1's menu commands; xvfb-run on a server)
``emdenoise fiji launch --headless --batch M``   no display at all
``emdenoise fiji launch --headless --fiji ~/.imagej --batch M``  with the macros installed there

A batch run uses the embedded engine unless ``--server`` is given, and exits 1 when the
macro was aborted or an EM command failed (``emdenoise fiji install`` prints the command).
"""

from __future__ import annotations

import sys
from pathlib import Path

from emdenoise.errors import UserError


def add_parser(sub) -> None:
    """Add ``launch`` to the ``fiji`` sub-verbs."""
    q = sub.add_parser(
        "launch",
        help="start ImageJ/Fiji in this Python with the EM commands served in-process",
        description="Start ImageJ (scyjava) or a Fiji.app (pyimagej) inside this Python process; "
                    "run(\"EM Denoise\", ...) and the other EM commands are served here, without "
                    "temporary files or a second Python.",
    )
    q.add_argument("--fiji", type=Path, metavar="PATH",
                   help="Fiji.app (started with pyimagej) or ImageJ folder; default: ImageJ1 from "
                        "$EMDENOISE_IJ_JAR or /usr/share/java/ij.jar")
    q.add_argument("--headless", action="store_true", help="no display (needs --batch)")
    q.add_argument("--batch", type=Path, metavar="MACRO", help="run this macro file in batch mode, then exit")
    q.add_argument("--arg", default="", metavar="TEXT", help="the macro's argument (getArgument())")
    q.add_argument("--server", metavar="HOST:PORT",
                   help="server the EM commands use by default (default: the embedded engine; with a window "
                        "and no --batch, the server EM Server Settings saved)")
    q.add_argument("--memory", metavar="SIZE", help="Java heap limit, e.g. 4g")
    q.set_defaults(func=run_launch)


def run_launch(args) -> int:
    """Start ImageJ, then run the batch macro or wait for the user to quit ImageJ."""
    from emdenoise.fiji.launch import exit_process, start_imagej

    if args.headless and args.batch is None:
        raise UserError(
            "--headless has no window to work in; pass --batch MACRO, or start ImageJ from a script "
            "with emdenoise.fiji.start_imagej(headless=True)."
        )
    if args.batch is not None and not args.batch.is_file():
        raise UserError(f"macro {args.batch} does not exist; check the path.")
    session = start_imagej(args.fiji, headless=args.headless, gui=args.batch is None,
                           server=args.server, memory=args.memory)
    code = 0
    try:
        if args.batch is not None:
            # A batch run uses the engine asked for here, not the one a GUI session saved in
            # IJ_Prefs.txt; the preference changes in memory only (batch ImageJ saves none).
            session.set_server(args.server)
            aborted_before = len(session.listener.aborted)
            failed_before = len(session.listener.failed)
            result = session.run_macro_file(args.batch, args.arg)
            failed = session.listener.failed[failed_before:]
            if result == "[aborted]" or len(session.listener.aborted) > aborted_before:
                print(f"emdenoise: the macro {args.batch.name} was aborted", file=sys.stderr)
                code = 1
            elif result:
                print(result)
            if failed:
                print(f"emdenoise: {len(failed)} EM command(s) failed in {args.batch.name}; the first: {failed[0]}",
                      file=sys.stderr)
                code = 1
        else:
            print("ImageJ is running; Plugins > emdenoise is served by this Python. Quit ImageJ to stop.", flush=True)
            session.wait_until_closed()
    finally:
        session.close()
    exit_process(code)
