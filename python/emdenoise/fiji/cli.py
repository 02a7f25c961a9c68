"""``emdenoise fiji install|uninstall|launch``: the EM commands in a Fiji.app or ImageJ folder,
or in an ImageJ/Fiji started by this Python (``launch``, see :mod:`emdenoise.fiji.launch_cli`).
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.fiji import launch_cli
from emdenoise.fiji.install import batch_commands, install, uninstall


def register(subparsers) -> None:
    p = subparsers.add_parser("fiji", help="the EM commands in Fiji/ImageJ: install, uninstall, launch")
    sub = p.add_subparsers(dest="fiji_command", metavar="ACTION")
    q = sub.add_parser("install", help="put Plugins > emdenoise into a Fiji.app or ImageJ folder")
    q.add_argument("--fiji", required=True, type=Path, metavar="PATH", help="Fiji.app, ImageJ folder or plugins folder")
    q.add_argument("--python", metavar="EXE", help="Python the commands start (default: this one)")
    q.set_defaults(func=run_install)
    q = sub.add_parser("uninstall", help="remove the EM commands again")
    q.add_argument("--fiji", required=True, type=Path, metavar="PATH", help="Fiji.app, ImageJ folder or plugins folder")
    q.set_defaults(func=run_uninstall)
    launch_cli.add_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_install(args) -> int:
    done = install(args.fiji, python=args.python)
    print(f"installed {', '.join(done.command_names)} into {done.commands}")
    print(f"the commands start {done.config.read_text().splitlines()[1].split('=', 1)[1]}")
    print(f"example lab macros: {done.examples}")
    print("restart Fiji/ImageJ (or Help > Refresh Menus) to see Plugins > emdenoise")
    commands = batch_commands(done)
    print("denoise a folder in batch (no display needed; exits 1 when a command fails):")
    print(f"  {commands['emdenoise']}")
    if "imagej" in commands:
        print("or with ImageJ's own -batch (needs a display; an unknown command there opens a dialog):")
        print(f"  {commands['imagej']}")
    return 0


def run_uninstall(args) -> int:
    removed = uninstall(args.fiji)
    if not removed:
        print(f"nothing to remove: no emdenoise commands in {args.fiji}")
    for folder in removed:
        print(f"removed {folder}")
    return 0
