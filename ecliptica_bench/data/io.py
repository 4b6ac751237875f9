"""Small file helpers shared by every stage: hashing, atomic writes, deterministic JSON/parquet."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import EclipticaError, Problem, ValidationError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dumps(obj) -> str:
    """Canonical JSON: sorted keys, fixed separators; the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def read_json(path: Path, hint: str = ""):
    """A JSON file's content, or one ValidationError naming the file (missing, unreadable, not UTF-8, not
    JSON) with `hint` (what to do about it) appended. The one reader for the package's own JSON files;
    callers check the keys they need."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""

    def error(message: str) -> ValidationError:
        return ValidationError([Problem(str(path), None, message + tail)])

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error("not found") from None
    except json.JSONDecodeError as exc:
        raise error(f"not valid JSON: {exc.msg}, line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise error(f"unreadable: {exc.strerror or exc}") from exc


def write_json(path: Path, obj) -> None:
    """Pretty JSON written atomically (tmp file + rename)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def _umask_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp always uses 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that it is complete or absent, with the mode a plain open() would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_parquet(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Deterministic parquet (fixed column order, no pandas index), written atomically."""
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    write_table(path, table.select(columns) if rows else table)


def write_table(path: Path, table: pa.Table) -> None:
    """A pyarrow table as zstd parquet, written atomically with the mode a plain open() would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: Path, rows: list[dict], columns: list[str]) -> None:
    atomic_write_text(path, "".join(json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n" for r in rows))


@contextlib.contextmanager
def staged_dir(final: Path, marker: str, carry: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build a directory beside `final` and move it into place only when the block succeeds.

    On any failure nothing is left behind. An existing `final` is replaced only if it is empty or
    was written by us (holds `marker`); anything else is refused rather than overwritten. Files of
    `final` named in `carry` (its writer lock, lock.py) do not count as content and move into the new
    directory, the same inodes, so a lock held on them stays held.
    """
    final = Path(final)
    if final.exists() and any(p.name not in carry for p in final.iterdir()) and not (final / marker).exists():
        raise EclipticaError(f"{final}: exists and was not written by ecliptica (no {marker}); refusing to overwrite")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, _umask_mode() | 0o111)  # mkdtemp makes 0700
    for name in carry:
        if (final / name).exists():
            os.replace(final / name, tmp / name)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
