"""The ImageJ command listener that serves the EM commands in this Python process.

ImageJ1 tells every ``ij.CommandListener`` registered with
``ij.Executer.addCommandListener`` about each command before it runs it, on the thread
that runs it (a macro's own thread for ``run("EM Denoise", ...)``, with
``ij.Macro.getOptions()`` set). Returning None consumes the command. This is how a
Python-launched ImageJ or Fiji routes the EM commands to :mod:`emdenoise.fiji.commands`
instead of to the macro files (which would start a second Python and write job folders).

A command ImageJ does not know would open a modal "Unrecognized command" dialog that
blocks a script forever; with ``guard_unknown`` the listener logs it and aborts the
macro instead (see :func:`_abort_unknown`). It does
so for ``EM ...`` names this emdenoise does not serve, and, without a display, for every
command ImageJ's command table lacks; with a display ImageJ's own fallbacks (LUTs,
examples, installed macros) stay in charge and :class:`emdenoise.fiji.guard.DialogGuard`
catches the dialog.
"""

from __future__ import annotations

from emdenoise.fiji.clients import ClientPool, default_pool
from emdenoise.fiji.commands import HANDLERS, Context, run_command

#: The menu the commands appear under.
MENU = "emdenoise"


def _j(name: str):
    from jpype import JClass

    return JClass(name)


def _make_listener_class():
    from jpype import JImplements, JOverride

    @JImplements("ij.CommandListener")
    class EMCommandListener:
        """Consumes the EM commands and runs them here; guards against unknown commands."""

        def __init__(self, pool: ClientPool, headless: bool, guard_unknown: bool):
            self.pool = pool
            self.headless = headless
            self.guard_unknown = guard_unknown
            self.aborted: list[str] = []  # unknown commands whose macro was stopped
            self.failed: list[str] = []  # "command: sentence" of each EM command that failed

        @JOverride
        def commandExecuting(self, command):
            name = str(command)
            if name in HANDLERS:
                options = _j("ij.Macro").getOptions()
                error = run_command(Context(name, None if options is None else str(options), self.pool, self.headless))
                if error is not None:
                    self.failed.append(f"{name}: {error}")
                return None
            if self.guard_unknown and (name.startswith("EM ") or self.headless) and not known_command(name):
                self.aborted.append(name)
                _abort_unknown(name)
                return None
            return command

    return EMCommandListener


_LISTENER = None


def known_command(name: str) -> bool:
    """Whether ImageJ can run ``name`` (a menu command or an installed macro)."""
    commands = _j("ij.Menus").getCommands()
    if commands is not None and commands.get(name) is not None:
        return True
    return bool(_j("ij.plugin.MacroInstaller").isMacroCommand(name))


def _abort_unknown(name: str) -> None:
    message = f'Unrecognized command: "{name}"'
    if name.startswith("EM ") and _has_macro_version(name):
        message += (" (not served in-process by this emdenoise yet: install the macro commands with "
                    "'emdenoise fiji install --fiji PATH' and launch that ImageJ with --fiji PATH)")
    elif bool(_j("java.awt.GraphicsEnvironment").isHeadless()):
        message += " (ImageJ1 without a display has no menu commands; run under a display, or start a Fiji.app)"
    _j("ij.IJ").log(message)  # the Log window, or stdout when ImageJ has none
    interpreter = calling_interpreter()
    if interpreter is not None:
        # Interpreter.shutdown(): the macro stops after this statement, without a dialog.
        # (abortMacro() would wait 2 s for its own thread and then stop every macro thread,
        # this Python's main thread included, which crashes the process.)
        shutdown = _j("ij.macro.Interpreter").class_.getDeclaredMethod("shutdown")
        shutdown.setAccessible(True)
        shutdown.invoke(interpreter)


def calling_interpreter():
    """The macro interpreter whose ``run(...)`` is executing now, or None outside macros.

    ``IJ.run(interpreter, command, options)`` keeps it in a private field for the time of
    the command. ``Interpreter.getInstance()`` is the most recently started interpreter
    instead, which after a nested ``runMacro()`` has finished is not the caller (measured:
    stopping that one let the calling macro run on).
    """
    field = _j("ij.IJ").class_.getDeclaredField("macroInterpreter")
    field.setAccessible(True)
    return field.get(None) or _j("ij.macro.Interpreter").getInstance()


def _has_macro_version(name: str) -> bool:
    """Whether ``fiji-macros/emdenoise/`` ships ``name`` as a macro command."""
    from emdenoise.errors import UserError
    from emdenoise.fiji.install import FOLDER, macros_source

    try:
        return (macros_source() / FOLDER / (name.replace(" ", "_") + ".ijm")).is_file()
    except UserError:
        return False


def install_listener(*, pool: ClientPool | None = None, headless: bool = False, guard_unknown: bool = True):
    """Register the EM command listener with ImageJ (once per JVM); returns it.

    Parameters
    ----------
    pool : ClientPool, optional
        Clients the commands use (default: the shared pool).
    headless : bool
        No display: options must come from the macro, results go to the Log.
    guard_unknown : bool
        Log and abort macros that call unknown commands instead of letting ImageJ open a
        blocking dialog.
    """
    global _LISTENER
    if _LISTENER is None:
        _LISTENER = _make_listener_class()(pool or default_pool, headless, guard_unknown)
        _j("ij.Executer").addCommandListener(_LISTENER)
    else:
        _LISTENER.pool = pool or _LISTENER.pool
        _LISTENER.headless = headless
        _LISTENER.guard_unknown = guard_unknown
    return _LISTENER


def add_menu() -> list[str]:
    """Put Plugins > emdenoise with the EM commands into the ImageJ menu bar (GUI only).

    Commands already there (``emdenoise fiji install`` put the macro versions in this
    ImageJ) are left as they are; the listener serves them either way. Returns the
    commands added.
    """
    from jpype import JClass

    ij = _j("ij.IJ").getInstance()
    plugins = _j("ij.Menus").getImageJMenu("Plugins")
    commands = _j("ij.Menus").getCommands()
    if ij is None or plugins is None or commands is None:
        return []
    added = [name for name in HANDLERS if commands.get(name) is None]
    if not added:
        return []
    submenu = JClass("java.awt.Menu")(MENU)
    for name in added:
        item = JClass("java.awt.MenuItem")(name)
        item.addActionListener(ij)  # ImageJ runs the command, the listener takes it
        submenu.add(item)
        commands.put(name, f"emdenoise in-process ({name})")
    plugins.add(submenu)
    return added
