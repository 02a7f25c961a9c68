"""POSIX shared-memory segments private to one user, and the removal of stale ones.

A segment is a file under ``/dev/shm`` (what ``shm_open`` makes on Linux), created with
mode 0600 by the client, named ``emdenoise-<pid>-<start>-<token>``: the creator's process
id and start time (clock ticks since boot, from ``/proc/PID/stat``) and 16 random bytes.
Its first page holds :data:`MAGIC` and a random key; frame slots follow.

Who removes what (nothing is left behind when either side is killed with SIGKILL):

- the server removes the name as soon as it has mapped the segment and checked its
  owner, mode and key; from then on the memory lives only as long as one of the two
  processes maps it, and the kernel frees it when both are gone;
- a server may keep its mapping between the calls of the client that made the segment
  (:mod:`emdenoise.server.segment_cache`; the client keeps its ring, :mod:`emdenoise.shm.pool`)
  and lets go of it when the client marks it released (byte :data:`RELEASED_AT`), when the
  creator process is gone, or when it stays unused; it never maps the same name twice;
- the client removes the name when its call ends for any reason, and when the segment
  object is collected or the interpreter exits (:func:`weakref.finalize`);
- a name whose creator died before the server mapped it is removed by
  :func:`sweep_stale`, which the server runs at start and every client runs before it
  creates a segment: any segment of this user whose creator process is gone (or whose
  process id now belongs to a process started at another time).

A same-user process could shrink a segment the server has mapped, and the server would
then die of SIGBUS on its next access; that user can kill the server anyway, so the
fast path gives it no new power. Other users cannot open the segments (mode 0600), and
the key proves that the caller made the segment it names (names are visible to all in
``/dev/shm``).
"""

from __future__ import annotations

import hmac
import logging
import mmap
import os
import secrets
import stat
import sys
import weakref
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Where POSIX shared memory lives on Linux.
SHM_DIR = Path("/dev/shm")
#: Every segment's name starts with this.
PREFIX = "emdenoise-"
#: The segment's first bytes; the key follows.
MAGIC = b"EMDNSHM1"
#: Random bytes of the key.
KEY_BYTES = 16
#: Bytes before the first slot (one page: slots start page-aligned).
HEADER_BYTES = 4096
#: Offset of the byte the client sets to 1 when it lets go of a segment a server keeps mapped
#: across calls (:mod:`emdenoise.server.segment_cache` then unmaps it too).
RELEASED_AT = len(MAGIC) + KEY_BYTES
#: ``madvise`` advice that maps (and allocates) a range's pages at once (Linux 5.14+).
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


class SegmentRefused(Exception):
    """A segment cannot be used; the message is one sentence saying why."""


def available() -> bool:
    """True where POSIX shared memory can be used: Linux with a writable ``/dev/shm``."""
    return sys.platform.startswith("linux") and SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK | os.X_OK)


def process_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot, or None when there is no such process."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def new_name() -> str:
    """A fresh segment name for this process: prefix, pid, start time, random token."""
    pid = os.getpid()
    return f"{PREFIX}{pid}-{process_start(pid) or 0}-{secrets.token_hex(16)}"


def creator(name: str) -> tuple[int, str] | None:
    """``(pid, start time)`` encoded in a segment name, or None when ``name`` is not one of ours."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), parts[1]


def check_name(name: str) -> str:
    """``name`` if it is a segment name this package makes, else :class:`SegmentRefused`."""
    if not isinstance(name, str) or "/" in name or "\0" in name or creator(name) is None:
        raise SegmentRefused(f"{name!r} is not an emdenoise shared-memory segment name; "
                             "let the client create the segment.")
    return name


#: mmap flags: shared. Not MAP_POPULATE: mapping a 4-slot ring at once took 12 ms where the
#: page faults of the slots a call really touches cost ~0.5 ms a slot (and are paid once per call).
MAP_FLAGS = mmap.MAP_SHARED


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:  # never raised from a finaliser or a cleanup path
        log.warning("could not remove shared-memory segment %s: %s", path, error)


class Segment:
    """One mapped segment.

    Parameters
    ----------
    name : str
        The file name under :data:`SHM_DIR`.
    mapping : mmap.mmap
        The whole segment, mapped shared and writable.
    key : bytes
        The key written after :data:`MAGIC`.
    owner : bool
        True in the process that created it: its name is removed when this object is
        collected or the interpreter exits, if :meth:`unlink` was not called before.
    """

    def __init__(self, name: str, mapping: mmap.mmap, key: bytes, *, owner: bool):
        self.name = name
        self.mapping = mapping
        self.key = key
        self.size = len(mapping)
        self.path = str(SHM_DIR / name)
        self._finalizer = weakref.finalize(self, _unlink, self.path) if owner else None

    def array(self, offset: int, dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A NumPy view of ``shape`` and ``dtype`` at byte ``offset``.

        The view holds an export of the mapping (through a memoryview), so :meth:`close`
        cannot unmap the memory under it (NumPy's own ``buffer=`` views would not).

        Raises
        ------
        ValueError
            The view would not lie within the segment.
        """
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        end = int(offset) + count * dtype.itemsize
        if offset < 0 or end > self.size:
            raise ValueError(f"bytes {offset} to {end} lie outside the {self.size}-byte segment")
        return np.frombuffer(memoryview(self.mapping)[int(offset):end], dtype=dtype).reshape(shape)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` released the mapping."""
        return self.mapping.closed

    def populate(self, offset: int = HEADER_BYTES, length: int | None = None) -> bool:
        """Fault in bytes ``offset`` to ``offset + length`` (default: to the end) in one system call.

        A page faulted in one by one costs ~1.1 µs here (a 4 MiB slot 1.2 ms, on each side
        that maps it); a segment kept across calls pays that once, when it is made, instead
        of within its first calls. True when the kernel did it (False: pages fault in as used).
        """
        length = self.size - offset if length is None else length
        try:
            self.mapping.madvise(MADV_POPULATE_WRITE, offset, length)
        except (OSError, ValueError):  # older kernels: the pages fault in on first use, as before
            return False
        return True

    @property
    def released(self) -> bool:
        """True once the creator set the released byte (:meth:`mark_released`)."""
        return not self.closed and self.mapping[RELEASED_AT] == 1

    def mark_released(self) -> None:
        """Tell a server that keeps this segment mapped that its client let go of it."""
        if not self.closed:
            self.mapping[RELEASED_AT] = 1

    def unlink(self) -> None:
        """Remove the name (the memory stays while a process maps it); safe to repeat."""
        if self._finalizer is not None:
            self._finalizer()  # runs _unlink once, and never again at exit
        else:
            _unlink(self.path)

    def close(self) -> None:
        """Release the mapping now, or when the last NumPy view of it is gone."""
        try:
            self.mapping.close()
        except BufferError:  # a view is still alive: the mapping goes with it
            pass


def create(size: int) -> Segment:
    """Create, size and map a new private segment of at least ``size`` bytes.

    The pages are allocated at once (``posix_fallocate``), so a full ``/dev/shm`` is an
    error here rather than a SIGBUS on the first write.

    Raises
    ------
    OSError
        The segment could not be created or allocated (no ``/dev/shm``, no space).
    """
    sweep_stale()
    size = max(int(size), HEADER_BYTES)
    name = new_name()
    path = str(SHM_DIR / name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.posix_fallocate(fd, 0, size)
        mapping = mmap.mmap(fd, size, flags=MAP_FLAGS)
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(fd)
    key = secrets.token_bytes(KEY_BYTES)
    mapping[: len(MAGIC) + KEY_BYTES] = MAGIC + key
    return Segment(name, mapping, key, owner=True)


def open_private(name: str, key: bytes, *, size: int | None = None, uid: int | None = None,
                 max_size: int | None = None) -> Segment:
    """Map the segment ``name`` a client created, then remove its name.

    Parameters
    ----------
    name : str
        The segment's file name under :data:`SHM_DIR`.
    key : bytes
        The key the client sent; it must equal the one in the segment.
    size : int, optional
        The size the client announced; the segment must have exactly this size.
    uid : int, optional
        The user the segment must belong to (default: this process's effective user).
    max_size : int, optional
        Larger segments are refused before they are mapped.

    Raises
    ------
    SegmentRefused
        Missing, not a regular file, another user's, readable by others, of another
        size, or without the key; the message says which.
    """
    check_name(name)
    uid = os.geteuid() if uid is None else uid
    path = str(SHM_DIR / name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SegmentRefused(f"there is no shared-memory segment {name} on the server's host; "
                             "shared memory works only with a client on the same machine.") from None
    except OSError as error:
        raise SegmentRefused(f"the server cannot open shared-memory segment {name} "
                             f"({error.strerror or error}); it must belong to the server's user.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SegmentRefused(f"shared-memory segment {name} is not a regular file.")
        if info.st_uid != uid:
            raise SegmentRefused(f"shared-memory segment {name} belongs to uid {info.st_uid}, not to the server's "
                                 f"user (uid {uid}); shared memory works only between processes of one user.")
        if info.st_mode & 0o077:
            raise SegmentRefused(f"shared-memory segment {name} has mode {stat.S_IMODE(info.st_mode):04o}; "
                                 "it must be private to its user (0600).")
        if info.st_size < HEADER_BYTES or (size is not None and info.st_size != size):
            raise SegmentRefused(f"shared-memory segment {name} holds {info.st_size} bytes, not the "
                                 f"{size if size is not None else HEADER_BYTES} announced.")
        if max_size is not None and info.st_size > max_size:
            raise SegmentRefused(f"shared-memory segment {name} holds {info.st_size / 2**20:.0f} MiB, more than the "
                                 f"{max_size / 2**20:.0f} MiB the server maps for one call.")
        mapping = mmap.mmap(fd, info.st_size, flags=MAP_FLAGS)
    finally:
        os.close(fd)
    head = mapping[: len(MAGIC) + KEY_BYTES]
    if head[: len(MAGIC)] != MAGIC or not hmac.compare_digest(head[len(MAGIC):], bytes(key)):
        mapping.close()
        raise SegmentRefused(f"shared-memory segment {name} does not carry the key of this call; "
                             "only the process that created a segment may name it.")
    _unlink(path)  # mapped: nothing can be left behind from here on
    return Segment(name, mapping, bytes(key), owner=False)


def sweep_stale(uid: int | None = None) -> list[str]:
    """Remove the segments of user ``uid`` whose creator process is gone.

    Parameters
    ----------
    uid : int, optional
        Whose segments (default: this process's effective user); others' are left alone.

    Returns
    -------
    list of str
        The names removed.
    """
    uid = os.geteuid() if uid is None else uid
    removed = []
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(PREFIX)]
    except OSError:
        return removed
    for name in names:
        made_by = creator(name)
        if made_by is None:
            continue
        pid, started = made_by
        now = process_start(pid)
        if now is not None and (now == started or started == "0"):
            continue  # its creator still runs
        path = SHM_DIR / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if info.st_uid != uid or not stat.S_ISREG(info.st_mode):
            continue
        _unlink(str(path))
        removed.append(name)
    if removed:
        log.info("removed %d shared-memory segment(s) of ended processes", len(removed))
    return removed


__all__ = ["HEADER_BYTES", "KEY_BYTES", "MAGIC", "PREFIX", "RELEASED_AT", "SHM_DIR", "Segment", "SegmentRefused", "available",
           "check_name", "create", "creator", "new_name", "open_private", "process_start", "sweep_stale"]
