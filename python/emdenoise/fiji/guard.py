"""Dispose modal ImageJ dialogs that would block a script, and say what they said.

Any macro error in ImageJ opens a modal dialog; in a script nobody clicks it and the
run hangs (issue 8, measured). A :class:`DialogGuard` watches the windows of a
Python-launched ImageJ that has a display but no user, prints each modal dialog's title
and text to stderr, and disposes it. Interactive sessions (a user
at the ImageJ window) run without it.
"""

from __future__ import annotations

import sys
import threading

#: The prefix of the lines a guard prints (tests and users grep for it).
MARK = "IMAGEJ-DIALOG"


def dialog_text(window) -> str:
    """Every label and text field of an AWT window, top to bottom, joined by ``" / "``."""
    from jpype import JClass

    label_class = JClass("java.awt.Label")
    text_class = JClass("java.awt.TextComponent")
    container_class = JClass("java.awt.Container")
    parts: list[str] = []

    def walk(component) -> None:
        if isinstance(component, label_class):
            parts.append(str(component.getText()))
        elif isinstance(component, text_class):
            parts.append(str(component.getText()))
        elif str(component.getClass().getName()) == "ij.gui.MultiLineLabel":
            lines = component.getClass().getDeclaredField("lines")
            lines.setAccessible(True)
            parts.extend(str(line) for line in (lines.get(component) or []))
        if isinstance(component, container_class):
            for child in component.getComponents():
                walk(child)

    walk(window)
    return " / ".join(p.strip() for p in parts if p and p.strip())


class DialogGuard:
    """A daemon thread that disposes every showing modal dialog, polling every ``interval`` s.

    Parameters
    ----------
    interval : float
        Seconds between looks at the window list.
    keep : set of str
        Titles left alone (a dialog a script fills in itself).
    """

    def __init__(self, *, interval: float = 0.1, keep: set[str] | None = None):
        self.interval = interval
        self.keep = set(keep or ())
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="emdenoise-dialog-guard", daemon=True)

    def start(self) -> "DialogGuard":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        from jpype import JClass

        JClass("java.lang.Thread").attachAsDaemon()
        window_class = JClass("java.awt.Window")
        dialog_class = JClass("java.awt.Dialog")
        while not self._stop.wait(self.interval):
            for window in window_class.getWindows():
                if not (isinstance(window, dialog_class) and window.isShowing() and window.isModal()):
                    continue
                title = str(window.getTitle())
                if title in self.keep:
                    continue
                line = f"{MARK} {title} | {dialog_text(window)}"
                self.seen.append(line)
                print(line, file=sys.stderr, flush=True)
                window.dispose()
