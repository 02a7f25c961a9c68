"""Output files: names that fit and stay in their folder, written whole or not at all.

Every writer (TIFF, ``.emz``) writes to a temporary file of its own beside the target and
moves it into place only when it is complete, so two runs writing the same output never
share a temporary name, and a partial result never appears under the final name.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from emdenoise.errors import UserError

NAME_MAX = 255  # bytes per file name on ext4, XFS, btrfs, NTFS, APFS


def display_name(path: str | os.PathLike) -> str:
    """``path`` as printable text (bytes that are not UTF-8 shown as U+FFFD).

    File names on Linux are bytes; Python keeps undecodable ones as surrogates, which
    cannot be printed or stored in ImageJ's Info.
    """
    return os.fsencode(os.fspath(path)).decode("utf-8", "replace")


def child_path(folder: Path, name: str) -> Path:
    """``folder / name``, refusing names that would leave ``folder`` or that no file system takes.

    Parameters
    ----------
    folder : Path
        The output folder.
    name : str
        A file name built from an input's name and a model id.

    Raises
    ------
    UserError
        ``name`` holds a path separator, is ``.``/``..``, or is longer than ``NAME_MAX`` bytes.
    """
    separators = {os.sep, os.altsep or os.sep, "\0"}
    if name in ("", ".", "..") or any(sep in name for sep in separators):
        raise UserError(f"the output name {display_name(name)!r} is not a plain file name; the model id or input "
                        "name it was made from is damaged, so rename the input or pass --model.")
    check_name_length(folder / name)
    return folder / name


def check_name_length(path: Path) -> None:
    """Refuse an output whose file name is longer than ``NAME_MAX`` bytes (one sentence)."""
    length = len(os.fsencode(path.name))
    if length > NAME_MAX:
        raise UserError(
            f"the output name {display_name(path.name)[:40]}... is {length} bytes long, more than the "
            f"{NAME_MAX} a file name may have; rename the input to something shorter or give -o a short .tif name."
        )


def check_target(path: Path, *, overwrite: bool) -> None:
    """Refuse an output that is a folder, is too long, or exists without ``overwrite``."""
    if path.is_dir():
        raise UserError(f"the output {display_name(path)} is an existing folder; give a file name that is not taken "
                        "by a folder, or give the folder itself as -o.")
    check_name_length(path)
    if path.exists() and not overwrite:
        raise UserError(f"{display_name(path)} already exists; pass --overwrite to replace it or choose another output.")


def unique_temporary(path: Path) -> Path:
    """Create an empty file beside ``path`` with a name no other run uses, and return it.

    Like :func:`tempfile.mkstemp` (``O_EXCL``), but the file gets the permissions the
    umask allows, as the final file should.
    """
    parent = path.parent if str(path.parent) else Path(".")
    stem = path.name[:40]  # the temporary name must fit NAME_MAX even when the target's barely does
    for _ in range(100):
        candidate = parent / f".{stem}.{secrets.token_hex(6)}.partial"
        try:
            handle = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise UserError(f"cannot write in {display_name(parent)} ({error.strerror}); choose another output.") from None
        os.close(handle)
        return candidate
    raise UserError(f"cannot find a free temporary name in {display_name(parent)}; clean up its .partial files.")


def commit(temporary: Path, path: Path, *, overwrite: bool) -> Path:
    """Move the complete ``temporary`` to ``path`` in one step.

    Without ``overwrite`` an output that appeared meanwhile (another run) is kept and this
    one is refused: the hard link fails instead of replacing it.
    """
    if overwrite:
        try:
            os.replace(temporary, path)
        except IsADirectoryError:
            raise UserError(f"the output {display_name(path)} is an existing folder; choose another output.") from None
        return path
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise UserError(f"{display_name(path)} was written meanwhile (another run?); pass --overwrite to replace it.") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # no hard links here (FAT, some network shares): check, then rename
            raise UserError(f"{display_name(path)} was written meanwhile (another run?); pass --overwrite to replace it.") from None
        os.replace(temporary, path)
        return path
    temporary.unlink()
    return path


@contextmanager
def atomic_output(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a unique temporary file for ``path``; on success move it there, else delete it.

    Examples
    --------
    >>> with atomic_output(Path("out.tif"), overwrite=False) as temporary:  # doctest: +SKIP
    ...     tifffile.imwrite(temporary, data)
    """
    temporary = unique_temporary(path)
    try:
        yield temporary
        commit(temporary, path, overwrite=overwrite)
    finally:
        temporary.unlink(missing_ok=True)
