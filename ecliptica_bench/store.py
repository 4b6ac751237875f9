"""The SQLite store of one output dir (WAL): generations, errors, judge verdicts and embeddings.

This module is the only place a cache key is made (`cache_key`), a per-request seed derived
(`request_seed`) and a model name turned into a run-id slug (`model_slug`). Rows are written the moment their
batch finishes, each batch in one transaction, so a process killed at any point loses at most the
batch in flight and never leaves a half-written row.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from .data.io import dumps, sha256_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    model_fingerprint TEXT NOT NULL,
    rendered_prompt TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    template_sha256 TEXT,
    params TEXT NOT NULL,
    seed INTEGER,
    response TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT,
    case_id TEXT,
    error TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    judge_model TEXT NOT NULL,
    template_version TEXT NOT NULL,
    verdict TEXT,
    status TEXT NOT NULL,
    raw TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL
);
"""


def cache_key(kind: str, **parts) -> str:
    """sha256 over a canonical JSON of the parts; every cache key in the project comes from here.

    generation: model fingerprint (incl. adapter), dtype, rendered prompt, sampling params, request seed
    judgment:   judge model, template version, rendered judge input
    embedding:  embedder, sha256 of the text
    """
    return sha256_text(dumps({"kind": kind, **parts}))


def model_slug(model: str) -> str:
    """The filesystem-safe start of a run id: the model path's last part (or its name), at most 40 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or model).strip("-.")[:40] or "model"


def request_seed(run_seed: int, case_id: str, greedy: bool) -> int:
    """The seed a generation request samples with.

    Sampled: derived from the run seed and the case, so every case (the uninstructed control's too) is its
    own draw, and a rerun asks for the same draws (and finds them cached). Greedy: the run seed alone, so
    cases whose rendered prompt is identical share one key, hence one generation.
    """
    if greedy:
        return int(run_seed)
    return int(sha256_text(f"{int(run_seed)}|{case_id}")[:8], 16) % (2**31 - 1)


class RunStore:
    FILENAME = "store.sqlite"

    def __init__(self, path: Path):
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / self.FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            check = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]  # linear in size; cheap next to a run
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # not SQLite / corrupted: a clean error, not a traceback
            self.conn.close()
            from .errors import EclipticaError

            raise EclipticaError(f"{path}: not a usable SQLite store ({exc}); move it away to start afresh") from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(sql, rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    # -- generations -------------------------------------------------------------------------
    def missing(self, keys: Iterable[str]) -> list[str]:
        keys = list(dict.fromkeys(keys))
        have = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
            have.update(k for (k,) in self.conn.execute(q, chunk))
        return [k for k in keys if k not in have]

    def put_generations(self, rows: list[dict]) -> None:
        now = time.time()
        self._write(
            "INSERT OR IGNORE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r["key"],
                    r["model_fingerprint"],
                    r["rendered_prompt"],
                    r["prompt_sha256"],
                    r.get("template_sha256"),
                    dumps(r["params"]),
                    r.get("seed"),
                    r["response"],
                    r.get("finish_reason"),
                    r.get("prompt_tokens"),
                    r.get("completion_tokens"),
                    r.get("latency_s"),
                    now,
                )
                for r in rows
            ],
        )

    def generations(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(dict.fromkeys(keys))
        out = {}
        cols = None
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            cur = self.conn.execute(f"SELECT * FROM generations WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            cols = cols or [d[0] for d in cur.description]
            for row in cur:
                d = dict(zip(cols, row))
                d["params"] = json.loads(d["params"])
                out[d["key"]] = d
        return out

    def count_generations(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    # -- errors ------------------------------------------------------------------------------
    def put_errors(self, rows: list[tuple[str, str | None, str | None, str]]) -> None:
        """Several (kind, key, case_id, error) rows in one transaction."""
        now = time.time()
        self._write(
            "INSERT INTO errors (kind, key, case_id, error, created_at) VALUES (?,?,?,?,?)",
            [(kind, key, case_id, error, now) for kind, key, case_id, error in rows],
        )

    def errors(self, kind: str | None = None) -> list[dict]:
        q = "SELECT kind, key, case_id, error, created_at FROM errors" + (" WHERE kind = ?" if kind else "")
        cur = self.conn.execute(q, (kind,) if kind else ())
        return [dict(zip(("kind", "key", "case_id", "error", "created_at"), r)) for r in cur]

    # -- judgments ---------------------------------------------------------------------------
    def get_judgment(self, key: str) -> dict | None:
        cur = self.conn.execute("SELECT judge_model, template_version, verdict, status, raw FROM judgments WHERE key = ?", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        return {
            "judge_model": row[0],
            "template_version": row[1],
            "verdict": json.loads(row[2]) if row[2] else None,
            "status": row[3],
            "raw": row[4],
        }

    def put_judgment(
        self, key: str, judge_model: str, template_version: str, verdict: dict | None, status: str, raw: str | None
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO judgments VALUES (?,?,?,?,?,?,?)",
            [(key, judge_model, template_version, dumps(verdict) if verdict is not None else None, status, raw, time.time())],
        )

    # -- embeddings --------------------------------------------------------------------------
    def get_embeddings(self, keys: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            cur = self.conn.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for k, blob in cur:
                out[k] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_embeddings(self, embedder: str, items: dict[str, np.ndarray]) -> None:
        self._write(
            "INSERT OR IGNORE INTO embeddings VALUES (?,?,?,?)",
            [(k, embedder, int(v.shape[-1]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
        )
