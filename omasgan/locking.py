"""An exclusive lock on a run directory, so that a second process is refused instead of interleaving writes.

The lock is the operating system's (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on the file
``<folder>/.lock``: it is released when the holder closes it or dies, so a killed run leaves no stale lock
behind. The file holds the holder's pid, for the error message only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from omasgan.errors import CheckpointError

__all__ = ["DirectoryLock"]

try:
    import fcntl

    def _try_lock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


class DirectoryLock:
    """Held by at most one open handle at a time, in this process or any other."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`CheckpointError` naming the process that holds it."""
        if self._handle is not None:
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            _try_lock(handle)
        except OSError:
            try:
                handle.seek(0)
                owner = handle.read().strip()
            except OSError:  # Windows: the holder's locked byte cannot be read
                owner = ""
            handle.close()
            holder = f" (pid {owner})" if owner.isdigit() else ""
            raise CheckpointError(
                f"{self.folder} is in use by another process{holder}; wait for it to finish, or use another "
                "run directory."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            _unlock(handle)
        finally:
            handle.close()

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
