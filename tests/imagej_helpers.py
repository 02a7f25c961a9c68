"""Run Debian's real ImageJ for the Fiji tests: under Xvfb, with hard timeouts, no hangs.

Two launchers:

* :func:`run_batch` is exactly what a lab runs, ``xvfb-run -a java -jar ij.jar -batch
  MACRO ARG``. A macro error there opens a modal dialog that would block forever, so the
  process group is killed at ``timeout`` and the test fails with the output so far.
* :func:`run_harness` starts ImageJ inside a JPype-hosted JVM (this file run as a
  script, under ``xvfb-run``). A watchdog thread prints every modal dialog as
  ``IMAGEJ-DIALOG title | text`` and disposes it, so errors surface as text instead of
  blocking; the harness can also drive the GUI (recorder, menus, screenshots).

Tests skip (with the reason) only when java, ij.jar, xvfb-run or JPype are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IJ_JAR = Path(os.environ.get("EMDENOISE_IJ_JAR", "/usr/share/java/ij.jar"))
REPO = Path(__file__).resolve().parents[1]
DIALOG_MARK = "IMAGEJ-DIALOG"


def missing_tools() -> str | None:
    """Why real-ImageJ tests cannot run here, or None when they can."""
    if shutil.which("java") is None:
        return "java is not installed (Debian: apt-get install imagej)"
    if not IJ_JAR.is_file():
        return f"{IJ_JAR} is missing (Debian: apt-get install imagej)"
    if shutil.which("xvfb-run") is None:
        return "xvfb-run is not installed (Debian: apt-get install xvfb xauth)"
    try:
        import jpype  # noqa: F401
    except ImportError:
        return "JPype1 is not installed (pip install JPype1)"
    return None


@dataclass
class Run:
    """What an ImageJ run printed and how long it took."""

    returncode: int
    output: str
    seconds: float

    @property
    def dialogs(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(DIALOG_MARK)]


def _run(argv: list[str], *, timeout: float, env: dict | None, cwd: Path | None) -> Run:
    start = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(cwd) if cwd else None,
        start_new_session=True,  # xvfb-run, Xvfb and java die together on timeout
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(
            f"ImageJ did not finish within {timeout:.0f} s (a modal dialog or a hung job); output:\n{output}"
        ) from None
    return Run(process.returncode, output, time.monotonic() - start)


def wait_for_workers_to_exit(temp: Path, timeout: float = 60.0) -> None:
    """Wait until no warm worker folder (``emdenoise-worker-*``) is left in ``temp``.

    A worker stops within a second of its ImageJ; this only returns early, it asserts nothing.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and list(Path(temp).glob("emdenoise-worker-*")):
        time.sleep(0.1)


def poisson_stack(path: Path, frames: int = 2, size: int = 32, seed: int = 0) -> Path:
    """A small uint16 TYX ImageJ TIFF of Poisson counts (mean 40) for the EM commands to denoise."""
    import numpy as np
    import tifffile

    data = np.random.default_rng(seed).poisson(40, (frames, size, size)).astype(np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    return path


def wait_until(predicate, timeout: float, what: str):
    """``predicate()``'s first truthy value, polled every 50 ms; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def installed_imagej(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An ImageJ folder in ``tmp_path`` with the emdenoise commands installed, and empty HOME and temp folders."""
    from emdenoise.fiji.install import install

    root = tmp_path / "ImageJ"
    (root / "plugins").mkdir(parents=True)
    (root / "macros").mkdir()
    install(root)
    home, temp = tmp_path / "home", tmp_path / "temp"
    home.mkdir()
    temp.mkdir()
    return root, home, temp


def imagej_env(home: Path, temp: Path, extra: dict | None = None) -> dict:
    """Environment with HOME (ImageJ prefs) and the temp folder inside the test's tmp_path."""
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["TMPDIR"] = str(temp)
    # Java takes its home from the password database, not HOME: ImageJ keeps prefs there.
    env["_JAVA_OPTIONS"] = f"-Djava.io.tmpdir={temp} -Duser.home={home}"
    env.update(extra or {})
    return env


def run_batch(macro: Path, arg: str, *, imagej_dir: Path, env: dict, timeout: float = 90, memory: str = "1g") -> Run:
    """``xvfb-run -a java -Dplugins.dir=IMAGEJ_DIR -jar ij.jar -batch MACRO ARG``."""
    argv = [
        "xvfb-run", "-a", "-s", "-screen 0 1024x768x24",
        "java", f"-Xmx{memory}", f"-Dplugins.dir={imagej_dir}", "-jar", str(IJ_JAR), "-batch", str(macro), arg,
    ]
    return _run(argv, timeout=timeout, env=env, cwd=imagej_dir)


def run_harness(*args: str, imagej_dir: Path, env: dict, timeout: float = 90) -> Run:
    """Run this file as the JPype harness under Xvfb with ``args`` (see :func:`_harness_main`)."""
    argv = [
        "xvfb-run", "-a", "-s", "-screen 0 1024x768x24",
        sys.executable, str(Path(__file__).resolve()), "--imagej-dir", str(imagej_dir), *args,
    ]
    return _run(argv, timeout=timeout, env=env, cwd=imagej_dir)


# -- the harness (runs in its own process under Xvfb) -----------------------------------------
def _dialog_text(window) -> str:
    """Every label and text field of an AWT window, top to bottom."""
    from java.awt import Container, Label, TextComponent

    parts: list[str] = []

    def walk(component) -> None:
        if isinstance(component, Label):
            parts.append(str(component.getText()))
        elif isinstance(component, TextComponent):
            parts.append(str(component.getText()))
        elif component.getClass().getName() == "ij.gui.MultiLineLabel":
            field = component.getClass().getDeclaredField("lines")
            field.setAccessible(True)
            parts.extend(str(line) for line in (field.get(component) or []))
        if isinstance(component, Container):
            for child in component.getComponents():
                walk(child)

    walk(window)
    return " / ".join(p.strip() for p in parts if p and p.strip())


def _start_dialog_watchdog(keep: set) -> None:
    """Print and dispose every modal dialog except the GenericDialogs whose title is in ``keep``.

    A command's closing message (same title, not a GenericDialog) is printed and closed too.
    """
    import threading

    from ij.gui import GenericDialog
    from java.awt import Dialog, Window

    def watch() -> None:
        while True:
            for window in Window.getWindows():
                if isinstance(window, Dialog) and window.isShowing() and window.isModal():
                    title = str(window.getTitle())
                    if title in keep and isinstance(window, GenericDialog):
                        continue
                    print(f"{DIALOG_MARK} {title} | {_dialog_text(window)}", flush=True)
                    window.dispose()
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def _wait_for_dialog(title: str, timeout: float = 30.0):
    from ij.gui import GenericDialog
    from java.awt import Window

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for window in Window.getWindows():
            if isinstance(window, GenericDialog) and window.isShowing() and str(window.getTitle()) == title:
                return window
        time.sleep(0.05)
    raise RuntimeError(f"no '{title}' dialog appeared within {timeout} s")


def _fill_and_ok(dialog, values: dict[str, str]) -> None:
    """Set a GenericDialog's fields by their recorder keys and press OK, as a user would."""
    from java.awt.event import ActionEvent

    def key(label) -> str:
        return str(label).strip().split(" ")[0].split(":")[0].lower()

    for label, control in _labelled_controls(dialog):
        name = key(label)
        if name not in values:
            continue
        value = values[name]
        kind = control.getClass().getName()
        if kind == "java.awt.Choice":  # an item, or the item of that model id ("id | details")
            items = [str(control.getItem(i)) for i in range(control.getItemCount())]
            control.select(next((item for item in items if item.split(" | ")[0] == value), value))
        elif kind == "java.awt.Checkbox":
            control.setState(value.lower() in ("1", "true", "yes"))
        else:
            control.setText(value)
    ok = dialog.getButtons()[0]
    dialog.actionPerformed(ActionEvent(ok, ActionEvent.ACTION_PERFORMED, "OK"))


def _labelled_controls(dialog):
    """(label, control) pairs of a GenericDialog in layout order."""
    from java.awt import Checkbox, Choice, Container, Label, TextField

    pairs = []
    pending = None

    def walk(component) -> None:
        nonlocal pending
        if isinstance(component, Label):
            pending = component.getText()
        elif isinstance(component, Checkbox):
            pairs.append((component.getLabel(), component))
        elif isinstance(component, (Choice, TextField)) and pending is not None:
            pairs.append((pending, component))
            pending = None
        elif isinstance(component, Container):
            for child in component.getComponents():
                walk(child)

    walk(dialog)
    return pairs


def _harness_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--imagej-dir", required=True)
    parser.add_argument("--gui", action="store_true", help="open the ImageJ window")
    parser.add_argument("--open", help="image to open first (GUI scenarios)")
    parser.add_argument("--macro", help="macro file to run on the main thread")
    parser.add_argument("--arg", default="")
    parser.add_argument("--record", help="k=v;k=v: run the --record-command from the menu with these dialog values, print the recorder")
    parser.add_argument("--record-command", default="EM Denoise", help="the command --record runs (default EM Denoise)")
    parser.add_argument("--menu-screenshot", help="PNG path: open Plugins > emdenoise and capture the screen")
    parser.add_argument("--escape", help="options: run EM Denoise with them, press Esc once frames stream")
    parser.add_argument("--temp", help="ImageJ's temp folder (where job folders appear), for --escape")
    args = parser.parse_args(argv)

    import jpype
    import jpype.imports  # noqa: F401

    jpype.startJVM(f"-Dplugins.dir={args.imagej_dir}", "-Xmx1g", classpath=[str(IJ_JAR)])
    from ij import IJ, ImageJ

    _start_dialog_watchdog(keep={args.record_command} if args.record else set())
    if args.gui or args.record or args.menu_screenshot:
        ImageJ()
        time.sleep(1.0)
    if args.open:
        IJ.open(args.open)
    if args.macro:
        result = IJ.runMacroFile(args.macro, args.arg)
        print(f"MACRO-RETURN {result}", flush=True)
    if args.record:
        _record(dict(item.split("=", 1) for item in args.record.split(";") if item), args.record_command)
    if args.menu_screenshot:
        _menu_screenshot(Path(args.menu_screenshot))
    if args.escape:
        _escape(args.escape, Path(args.temp))
    log = IJ.getLog()
    print("IMAGEJ-LOG>>>\n" + (str(log) if log is not None else "") + "<<<IMAGEJ-LOG", flush=True)
    sys.stdout.flush()
    os._exit(0)


def _record(values: dict[str, str], command: str = "EM Denoise") -> None:
    """Open the Macro Recorder, run ``command`` from the menu as a user, print the recording."""
    from ij import IJ, WindowManager
    from ij.plugin.frame import Recorder

    IJ.run("Record...")
    time.sleep(0.5)
    before = WindowManager.getImageCount()
    IJ.doCommand(command)  # what choosing it in Plugins > emdenoise does
    dialog = _wait_for_dialog(command)
    for label, control in _labelled_controls(dialog):
        if control.getClass().getName() == "java.awt.Choice":
            items = [str(control.getItem(i)) for i in range(control.getItemCount())]
            print(f"DIALOG-CHOICE {str(label).strip()} >>> " + " ;; ".join(items), flush=True)
    _fill_and_ok(dialog, values)
    # The recorder writes the command's line when the command has finished.
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = str(Recorder.getInstance().getText())
        if command in text:
            break
        time.sleep(0.1)
    print(f"IMAGES {before} -> {WindowManager.getImageCount()}", flush=True)
    print("RECORDER>>>\n" + text + "<<<RECORDER", flush=True)
    print(f"RESULT-TITLE {IJ.getImage().getTitle()}", flush=True)


def _escape(options: str, temp: Path) -> None:
    """Start EM Denoise as a macro would, press Esc in ImageJ mid-job, report what is left."""
    import threading

    from ij import IJ, WindowManager
    from java.awt.event import KeyEvent

    before = WindowManager.getImageCount()
    macro = f'run("EM Denoise", "{options}");'
    threading.Thread(target=lambda: IJ.runMacro(macro), daemon=True).start()
    deadline = time.monotonic() + 60
    running = False
    while time.monotonic() < deadline and not running:
        for status in temp.glob("emdenoise-job-*/status.txt"):
            text = status.read_text()
            running = "state=running" in text and "done=0\n" not in text
        time.sleep(0.05)
    print(f"JOB-RUNNING {running}", flush=True)
    frame = IJ.getInstance()
    frame.keyPressed(KeyEvent(frame, KeyEvent.KEY_PRESSED, int(time.time() * 1000), 0, KeyEvent.VK_ESCAPE, KeyEvent.CHAR_UNDEFINED))
    pressed = time.monotonic()
    while time.monotonic() - pressed < 20 and list(temp.glob("emdenoise-job-*")):
        time.sleep(0.1)
    print(f"JOB-FOLDERS-LEFT {len(list(temp.glob('emdenoise-job-*')))} after {time.monotonic() - pressed:.1f} s", flush=True)
    time.sleep(1.0)
    print(f"IMAGES {before} -> {WindowManager.getImageCount()}", flush=True)


def _menu_screenshot(path: Path) -> None:
    """Open Plugins > emdenoise with the keyboard (F10, arrows) and save the screen."""
    from ij import IJ
    from java.awt import Rectangle, Robot, Toolkit
    from java.awt.event import KeyEvent
    from java.io import File
    from javax.imageio import ImageIO

    robot = Robot()
    robot.setAutoDelay(120)
    frame = IJ.getInstance()
    frame.toFront()
    robot.waitForIdle()
    time.sleep(0.5)
    menus = [str(frame.getMenuBar().getMenu(i).getLabel()) for i in range(frame.getMenuBar().getMenuCount())]
    plugins = menus.index("Plugins")
    submenu = frame.getMenuBar().getMenu(plugins)
    entries = [str(submenu.getItem(i).getLabel()) for i in range(submenu.getItemCount())]
    print(f"PLUGINS-MENU {entries}", flush=True)
    def press(key, times=1):
        for _ in range(times):
            robot.keyPress(key)
            robot.keyRelease(key)
            robot.waitForIdle()
            time.sleep(0.25)

    press(KeyEvent.VK_F10)  # opens the first menu (File)
    time.sleep(0.5)
    # Leftwards, wrapping past Help: moving right would open the submenus that head
    # the File and Image menus instead of moving on.
    press(KeyEvent.VK_LEFT, len(menus) - plugins)
    # Up from the first entry wraps to the last one, the emdenoise submenu.
    if entries[-1] != "emdenoise":
        raise RuntimeError(f"emdenoise is not the last Plugins entry: {entries}")
    press(KeyEvent.VK_UP)
    press(KeyEvent.VK_RIGHT)
    time.sleep(1.0)
    size = Toolkit.getDefaultToolkit().getScreenSize()
    bounds = frame.getBounds()
    left = max(int(bounds.x) - 8, 0)
    width = min(int(size.width) - left, int(bounds.width) + 200)  # the submenu opens to the right
    height = min(int(size.height), int(bounds.y + bounds.height) + 260)  # room for every EM command
    image = robot.createScreenCapture(Rectangle(left, 0, width, height))
    ImageIO.write(image, "png", File(str(path)))
    print(f"SCREENSHOT {path} {width}x{height}", flush=True)
    robot.keyPress(KeyEvent.VK_ESCAPE)
    robot.keyRelease(KeyEvent.VK_ESCAPE)


# -- added for the in-process tests (issue 9) ---------------------------------------------------
def missing_inprocess_tools() -> str | None:
    """Why an ImageJ cannot be started inside Python here (scyjava, JPype, java, ij.jar)."""
    if shutil.which("java") is None:
        return "java is not installed (Debian: apt-get install imagej)"
    if not IJ_JAR.is_file():
        return f"{IJ_JAR} is missing (Debian: apt-get install imagej)"
    try:
        import jpype  # noqa: F401
        import scyjava  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install scyjava)"
    return None


def run_python(*args: str, inner_env: dict, cwd: Path, display: bool = True, timeout: float = 90) -> Run:
    """``[xvfb-run -a] env K=V... python ARGS`` with a hard timeout.

    ``inner_env`` reaches only the Python process, not xvfb-run, whose own Xauthority
    file would otherwise land in the TMPDIR a test watches for temporary files.
    """
    env = dict(os.environ)
    if not display:
        env.pop("DISPLAY", None)
    argv = ["env", *(f"{key}={value}" for key, value in inner_env.items()), sys.executable, *args]
    if display:
        argv = ["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", *argv]
    return _run(argv, timeout=timeout, env=env, cwd=cwd)


if __name__ == "__main__":
    sys.exit(_harness_main(sys.argv[1:]))
