"""One writer per run directory at a time (`ecliptica run`, `score` and `import-lm-eval`).

The lock is an OS file lock (the `filelock` library, fcntl.flock on Unix) on RUN_DIR/.lock, so the kernel
drops it when the holder exits or is killed: a lock file left behind never blocks the next writer. Who holds
it (pid, host, start time, command) is written to RUN_DIR/.lock.owner.json for the message a second writer
prints. `import-lm-eval` swaps in a whole new run directory: data.io.staged_dir carries both files across
(LOCK_FILES), so the lock stays on the same inode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .data.io import write_json
from .errors import EclipticaError

log = logging.getLogger(__name__)

LOCK_FILES = (".lock", ".lock.owner.json")


def lock_paths(run_dir: Path) -> tuple[Path, Path]:
    """(lock file, owner file) of a run directory."""
    return Path(run_dir) / LOCK_FILES[0], Path(run_dir) / LOCK_FILES[1]


def describe_holder(owner_file: Path) -> str:
    """'pid 123 on host since 2026-01-01T00:00:00Z (ecliptica run ...)', or why it is unknown."""
    try:
        o = json.loads(owner_file.read_text(encoding="utf-8"))
        return f"pid {o['pid']} on {o['host']} since {o['started_at']} ({o['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it is starting or finishing"


@contextlib.contextmanager
def run_dir_lock(run_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold RUN_DIR's writer lock for the block. Busy: EclipticaError naming the holder, or wait for it."""
    lock_file, owner_file = lock_paths(run_dir)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_file)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = describe_holder(owner_file)
            if not wait:
                raise EclipticaError(
                    f"{run_dir}: a run is in progress, lock held by {holder}; try again when it ends, or pass --wait"
                ) from None
            log.warning("%s: waiting for the lock held by %s", run_dir, holder)
            lock.acquire()
    except OSError as exc:
        raise EclipticaError(f"{lock_file}: cannot take the run directory lock: {exc}") from exc
    try:
        write_json(
            owner_file,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            },
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            owner_file.unlink()  # before the release, so the next holder's file is never removed
        lock.release()
