"""Start ImageJ or Fiji inside this Python process, with the EM commands served here.

Two ways in, one ImageJ1 API after (ARCHITECTURE.md, "Fiji side"):

* a **Fiji.app** (a folder holding ``jars/``) starts through pyimagej,
  ``imagej.init(fiji_app, mode=...)``; the optional ``fiji`` extra installs it;
* otherwise **ImageJ1** starts through scyjava with an ``ij.jar`` on the class path:
  an ImageJ folder's, ``$EMDENOISE_IJ_JAR``, or Debian's ``/usr/share/java/ij.jar``.

Either way the JVM runs in this process (JPype), the :mod:`emdenoise.fiji.listener`
takes ``run("EM Denoise", ...)`` and the other EM commands and serves them through the
embedded engine or a server without temporary files or a second Python, and scripts
move ImagePlus data with :mod:`emdenoise.fiji.imageplus` and
:func:`emdenoise.fiji.denoise.denoise_imageplus`.

scyjava is told ``fetch="never"``: it must use the Java that is installed, never
download one. A JVM cannot be restarted in a process, so :func:`start_imagej` starts
ImageJ once and later calls return the same session.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from emdenoise.errors import UserError
from emdenoise.fiji.clients import ClientPool, default_pool, server_of
from emdenoise.fiji.install import DEBIAN_IJ_JAR  # where Debian's ``imagej`` package puts ImageJ 1
FIJI_EXTRA_HINT = "pip install 'emdenoise[fiji]'"


@dataclass(frozen=True)
class Installation:
    """An ImageJ to start: ``kind`` is ``"fiji"`` (pyimagej) or ``"imagej1"`` (scyjava)."""

    kind: str
    root: Path | None
    ij_jar: Path | None = None
    plugins: Path | None = None


def find_imagej(fiji: str | os.PathLike | None = None) -> Installation:
    """Decide what to start for ``--fiji PATH`` (or for no path).

    Parameters
    ----------
    fiji : path-like, optional
        A Fiji.app (holds ``jars/``), an ImageJ1 folder (holds ``ij.jar``), or an ImageJ
        user folder holding ``plugins/`` (Debian's ``~/.imagej``). Without
        it: the ``ij.jar`` named by ``$EMDENOISE_IJ_JAR``, else Debian's.

    Raises
    ------
    UserError
        The path is missing or is neither; or no ImageJ is given and none is installed.
    """
    if fiji is None:
        jar = Path(os.environ.get("EMDENOISE_IJ_JAR") or DEBIAN_IJ_JAR)
        if not jar.is_file():
            raise UserError(
                f"no ImageJ found ({jar} is missing); pass --fiji /path/to/Fiji.app, "
                "or install ImageJ 1 (Debian/Ubuntu: apt-get install imagej)."
            )
        return Installation("imagej1", None, ij_jar=jar)
    root = Path(fiji).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{root} does not exist; pass the Fiji.app folder (the one that holds jars/ and plugins/).")
    if (root / "jars").is_dir():
        return Installation("fiji", root, plugins=root / "plugins")
    if (root / "ij.jar").is_file():
        plugins = root / "plugins"
        return Installation("imagej1", root, ij_jar=root / "ij.jar", plugins=plugins if plugins.is_dir() else None)
    if (root / "plugins").is_dir():  # an ImageJ user folder such as Debian's ~/.imagej: the system's ij.jar
        jar = Path(os.environ.get("EMDENOISE_IJ_JAR") or DEBIAN_IJ_JAR)
        if not jar.is_file():
            raise UserError(f"{root} holds plugins/ but no ij.jar, and {jar} is missing; install ImageJ 1 "
                            "(Debian/Ubuntu: apt-get install imagej) or pass a Fiji.app.")
        return Installation("imagej1", root, ij_jar=jar, plugins=root / "plugins")
    raise UserError(
        f"{root} is neither a Fiji.app (no jars/ folder) nor an ImageJ folder (no ij.jar); "
        "pass the folder that holds them."
    )


@dataclass
class ImageJSession:
    """ImageJ running in this process, with the EM commands served by emdenoise.

    Attributes
    ----------
    installation : Installation
        What was started.
    headless : bool
        Java runs without a display (``java.awt.headless``).
    gui : bool
        The ImageJ window is shown.
    gateway : object or None
        pyimagej's ImageJ2 gateway when a Fiji.app was started.
    pool : ClientPool
        Clients the commands and :meth:`denoise` use.
    """

    installation: Installation
    headless: bool
    gui: bool
    gateway: object = None
    pool: ClientPool = field(default_factory=lambda: default_pool)
    listener: object = None
    guard: object = None

    # -- the ImageJ1 API, for scripts ----------------------------------------------------
    @staticmethod
    def ij(name: str = "ij.IJ"):
        """An ImageJ class by name (``session.ij("ij.WindowManager")``)."""
        from jpype import JClass

        return JClass(name)

    def run_macro(self, code: str, arg: str = "", *, batch: bool = True) -> str | None:
        """Run macro ``code`` (in batch mode unless ``batch=False``); its return value."""
        return self._in_batch_mode(batch, lambda: self.ij().runMacro(code, arg))

    def run_macro_file(self, path: str | os.PathLike, arg: str = "", *, batch: bool = True) -> str | None:
        """Run a macro file as ImageJ's ``-batch`` does (batch mode unless ``batch=False``)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"macro {path} does not exist; check the path.")
        return self._in_batch_mode(batch, lambda: self.ij().runMacroFile(str(path), arg))

    def _in_batch_mode(self, batch: bool, run) -> str | None:
        # ImageJ's -batch sets this flag: no image windows, Log lines on stdout without a window
        interpreter = self.ij("ij.macro.Interpreter")
        previous = bool(interpreter.batchMode)
        interpreter.batchMode = bool(batch) or previous
        try:
            result = run()
        finally:
            interpreter.batchMode = previous
        return None if result is None else str(result)

    def open_image(self, path: str | os.PathLike):
        """Open an image file as an ImagePlus (not shown); None when ImageJ cannot read it."""
        return self.ij().openImage(str(path))

    def denoise(self, imp, model: str | None = None, *, server: str | None = None, **options):
        """:func:`emdenoise.fiji.denoise.denoise_imageplus` with this session's clients.

        ``server`` defaults to the one set with EM Server Settings (or ``--server``).
        """
        from emdenoise.fiji.denoise import denoise_imageplus

        if server is None:
            server = str(self.ij("ij.Prefs").get("emdenoise.server", "embedded"))
        return denoise_imageplus(imp, model, client=self.pool.get(server), **options)

    def set_server(self, server: str | None) -> None:
        """Where the EM commands send work by default (``host:port``, or None: embedded)."""
        self.ij("ij.Prefs").set("emdenoise.server", server_of(server) or "embedded")

    def log_text(self) -> str:
        """Everything written to ImageJ's Log window so far ("" without one)."""
        text = self.ij().getLog()
        return "" if text is None else str(text)

    def wait_until_closed(self, poll: float = 0.5) -> None:
        """Block until the user quits ImageJ (returns at once without a window)."""
        if not self.gui:
            return
        if self.gateway is not None:
            while self.gateway.ui().isVisible():
                time.sleep(poll)
            return
        while True:
            instance = self.ij().getInstance()
            if instance is None or not instance.isShowing():
                return
            time.sleep(poll)

    def close(self) -> None:
        """Stop the dialog guard and close the clients (the JVM lives until Python exits)."""
        if self.guard is not None:
            self.guard.stop()
        self.pool.close()


_SESSION: ImageJSession | None = None


def start_imagej(
    fiji: str | os.PathLike | None = None,
    *,
    headless: bool = False,
    gui: bool = False,
    server: str | None = None,
    memory: str | None = None,
    guard_dialogs: bool | None = None,
) -> ImageJSession:
    """Start ImageJ (or Fiji) in this process with the EM commands served here.

    Parameters
    ----------
    fiji : path-like, optional
        A Fiji.app (started through pyimagej) or an ImageJ1 folder; without it, ImageJ1
        from ``$EMDENOISE_IJ_JAR`` or Debian's ``/usr/share/java/ij.jar`` (scyjava).
    headless : bool
        No display at all (``java.awt.headless=true``; pyimagej's headless mode). ImageJ1
        alone then runs the EM commands and display-free macro functions (open, saveAs,
        newImage...) but not its menu commands; Fiji's headless mode runs those too.
    gui : bool
        Show the ImageJ window, with Plugins > emdenoise.
    server : str, optional
        ``host:port`` the EM commands use by default (as EM Server Settings sets it).
    memory : str, optional
        Java's maximum heap, e.g. ``"4g"``.
    guard_dialogs : bool, optional
        Dispose blocking dialogs and print them (default: when there is a display but no
        ImageJ window, i.e. a script under Xvfb or on a desktop).

    Notes
    -----
    When Java already runs in this process with ImageJ on its class path (a script that
    called ``imagej.init(...)`` itself), nothing is started: the commands are served in
    that ImageJ, and ``fiji``, ``headless`` and ``memory`` are not used.

    Returns
    -------
    ImageJSession

    Raises
    ------
    UserError
        No usable ImageJ or Fiji, pyimagej missing for a Fiji.app, Java failing to start,
        or a second start with other settings in the same process.
    """
    global _SESSION
    if headless and gui:
        raise UserError("--headless and a window exclude each other; drop one of them.")
    if _SESSION is not None:
        other = fiji is not None and find_imagej(fiji) != _SESSION.installation
        if other or headless != _SESSION.headless:
            raise UserError(
                "ImageJ is already running in this Python with other settings and Java cannot be restarted "
                "in one process; start a new Python for the other ImageJ."
            )
        return _SESSION
    # onnxruntime's telemetry writes a device id under HOME and a file in TMPDIR on import;
    # a session that promises no temporary files turns it off unless the user set it.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    gateway = None
    if _imagej_already_running():
        # e.g. after the script's own imagej.init(...): serve the commands in that ImageJ
        installation = Installation("running", None)
        headless = bool(_j_class("java.awt.GraphicsEnvironment").isHeadless())
        gui = gui and not headless
        if headless:
            _init_headless_imagej1()  # no-op where Fiji's legacy layer built the command table
        elif gui and _j_class("ij.IJ").getInstance() is None:
            _j_class("ij.ImageJ")(_j_class("ij.ImageJ").EMBEDDED)
    else:
        installation = find_imagej(fiji)
        if installation.kind == "fiji":
            gateway = _start_fiji(installation, headless=headless, gui=gui, memory=memory)
        else:
            _start_imagej1(installation, headless=headless, gui=gui, memory=memory)
    from emdenoise.fiji.listener import add_menu, install_listener

    # Macros (Denoise_Folder.ijm) test this to know the EM commands are served in-process.
    _j_class("java.lang.System").setProperty("emdenoise.inprocess", "true")

    session = ImageJSession(installation, headless=headless, gui=gui, gateway=gateway)
    session.listener = install_listener(pool=session.pool, headless=headless)
    if gui:
        add_menu()
    if guard_dialogs is None:
        guard_dialogs = not headless and not gui
    if guard_dialogs:
        from emdenoise.fiji.guard import DialogGuard

        session.guard = DialogGuard().start()
    if server:
        session.set_server(server)
    _SESSION = session
    return session


def _j_class(name: str):
    from jpype import JClass

    return JClass(name)


def _imagej_already_running() -> bool:
    """Java already runs in this process (started by the caller) with ImageJ1 classes on it."""
    jpype = sys.modules.get("jpype")
    if jpype is None or not jpype.isJVMStarted():
        return False
    try:
        _j_class("ij.IJ")
    except Exception:
        raise UserError(
            "Java is already running in this Python without ImageJ on its class path; "
            "start ImageJ before anything else starts Java, or use a new Python."
        ) from None
    _allow_exit_with_java_threads()
    return True


def _configure_scyjava(memory: str | None):
    try:
        import scyjava
    except ImportError:
        raise UserError(f"starting ImageJ from Python needs scyjava; install it with {FIJI_EXTRA_HINT}.") from None
    scyjava.config.set_java_constraints(fetch="never")  # use the installed Java, never download one
    if memory:
        scyjava.config.add_option(f"-Xmx{memory}")
    return scyjava


def _start_imagej1(installation: Installation, *, headless: bool, gui: bool, memory: str | None) -> None:
    scyjava = _configure_scyjava(memory)
    scyjava.config.add_classpath(str(installation.ij_jar))
    if installation.plugins is not None:
        scyjava.config.add_option(f"-Dplugins.dir={installation.root}")
    if headless:
        scyjava.config.add_option("-Djava.awt.headless=true")
    try:
        scyjava.start_jvm()
    except Exception as error:  # no Java, a broken JAVA_HOME...
        raise UserError(
            f"Java did not start ({error}); install a Java runtime (Debian: apt-get install default-jre) "
            "or set JAVA_HOME."
        ) from None
    _allow_exit_with_java_threads()
    from jpype import JClass

    if headless:
        _init_headless_imagej1()
    elif gui:
        ij = JClass("ij.ImageJ")
        if JClass("ij.IJ").getInstance() is None:
            ij(ij.EMBEDDED)  # EMBEDDED: quitting ImageJ must not System.exit() this Python
    elif not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        raise UserError(
            "ImageJ1 needs a display for its menu commands and there is none (DISPLAY is unset); "
            "run under xvfb-run, or pass --headless (EM commands only)."
        )


def _init_headless_imagej1() -> None:
    """Give headless ImageJ1 a command table so that ``run()`` reaches the listener.

    ``IJ.run`` first builds ImageJ's menus, which throws HeadlessException without a
    display and aborts the macro. Building them once here, ignoring that exception,
    leaves the (empty) command table in place; later ``run()`` calls go straight to the
    command listeners.
    """
    from jpype import JClass

    if JClass("ij.Menus").getCommands() is not None:
        return
    init = JClass("ij.IJ").class_.getDeclaredMethod("init")
    init.setAccessible(True)
    try:
        init.invoke(None)
    except Exception:  # java.lang.reflect.InvocationTargetException(HeadlessException): expected
        pass
    if JClass("ij.Menus").getCommands() is None:
        raise UserError("headless ImageJ1 could not set up its command table; run it under a display (xvfb-run).")


def exit_process(code: int = 0) -> None:
    """End a Python process that has started ImageJ, with exit status ``code``.

    ImageJ's AWT threads keep the JVM alive, so JPype is told not to destroy it at exit
    (:func:`_allow_exit_with_java_threads`). The interpreter's normal teardown then races
    those live Java threads and, on a loaded machine, sometimes aborts with "FATAL:
    exception not rethrown" (seen in CI: status 134 instead of the script's own). Call this
    last, after :meth:`ImageJSession.close`: it flushes the output and leaves at once.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def _allow_exit_with_java_threads() -> None:
    """Let Python exit although AWT's threads still run (they would block JPype's shutdown)."""
    import jpype

    jpype.config.destroy_jvm = False


def _start_fiji(installation: Installation, *, headless: bool, gui: bool, memory: str | None):
    """pyimagej's ``imagej.init(fiji_app, mode=...)`` on a JVM started here, then the ImageJ1 path.

    Java is started here, with the class path and options pyimagej would use for a local
    Fiji.app (its ``jars/`` and ``plugins/`` jars, ``-Dplugins.dir``, the ``--add-opens``
    Java 17 needs): pyimagej 1.8 starting Java itself under ``fetch="never"`` fails in its
    Java-version guess (UnboundLocalError, measured), and with a running JVM ``imagej.init``
    only builds the ImageJ2 gateway, the one step that needs a real Fiji.app.
    """
    scyjava = _configure_scyjava(memory)
    try:
        import imagej
    except ImportError:
        raise UserError(f"starting a Fiji.app from Python needs pyimagej; install it with {FIJI_EXTRA_HINT}.") from None
    root = installation.root
    jars = scyjava.config.find_jars(str(root / "jars")) + scyjava.config.find_jars(str(root / "plugins"))
    if not jars:
        raise UserError(f"{root / 'jars'} holds no .jar files, so {root} is not a complete Fiji.app; reinstall Fiji.")
    # pyimagej (through imglyb) registers Maven endpoints on import; for a local Fiji.app it
    # drops them, as here, so that nothing is resolved over the network.
    scyjava.config.endpoints.clear()
    scyjava.config.add_classpath(*jars)
    scyjava.config.add_option(f"-Dplugins.dir={root / 'plugins'}")
    if _java_major(scyjava) >= 9:  # Java 8 (older Fiji bundles) does not know the option
        scyjava.config.add_option("--add-opens=java.base/java.lang=ALL-UNNAMED")
    if headless:
        scyjava.config.add_option("-Djava.awt.headless=true")
    try:
        scyjava.start_jvm()
    except Exception as error:
        if scyjava.jvm_started():  # Java runs; a start-up hook of pyimagej's libraries failed
            raise UserError(
                f"{root} is not a complete Fiji.app: Java started with its jars/ but pyimagej's start-up "
                f"failed ({error}); update it with Help > Update... in Fiji, or reinstall Fiji."
            ) from None
        raise UserError(
            f"Java did not start ({error}); install a Java runtime (Debian: apt-get install default-jre) "
            "or set JAVA_HOME."
        ) from None
    _unlock_modules_for_imagej_legacy()
    mode = "headless" if headless else "interactive"
    try:
        gateway = imagej.init(str(root), mode=mode)
    except Exception as error:
        raise UserError(
            f"pyimagej could not start the Fiji at {root} ({type(error).__name__}: {error}); "
            "update it with Help > Update... in Fiji, or pass an ImageJ folder that holds ij.jar."
        ) from None
    if not gateway:
        raise UserError(
            f"{root} is not a complete Fiji.app: Java started with its jars/ but found no ImageJ2 "
            "(net.imagej.ImageJ) in them; update it with Help > Update... in Fiji, or reinstall Fiji."
        )
    legacy = getattr(gateway, "legacy", None)
    if legacy is None or not legacy.isActive():
        raise UserError(
            f"the Fiji at {root} has no ImageJ1 layer (imagej-legacy), which the EM commands use; "
            "enable it with Help > Update... (ImageJ legacy) or reinstall Fiji."
        )
    _allow_exit_with_java_threads()
    if gui:
        gateway.ui().showUI()
    return gateway


def _java_major(scyjava) -> int:
    """Major version of the Java scyjava will start (9 when it cannot tell: modern Java)."""
    try:
        return int(scyjava.jvm_version()[0])
    except Exception:
        return 9


def _unlock_modules_for_imagej_legacy() -> None:
    """What pyimagej does after starting Java 17+ itself: open the JDK's packages to the
    class path, so that imagej-legacy can patch ImageJ1 (no-op without a real Fiji.app)."""
    import logging

    try:
        from imagej._java import unlock_modules
    except ImportError:  # another pyimagej layout: it will say what fails
        return
    unlock_modules(logging.getLogger("emdenoise.fiji"))
