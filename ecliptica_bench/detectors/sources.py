"""External training/validation data of the learned detectors: pinned files, fetched or read locally, each
checked against its sha256 before use. Nothing here is shipped in the repository (library rule); the
manifest records each source's URL, pinned commit, licence and file hashes.

A Source names a GitHub repository at a commit and the files used, {path in the repository: sha256}.
materialise(source, local) returns {path: local file}: from `local` (a folder holding the files at their
repository paths or by file name alone) or, without one, downloaded from raw.githubusercontent.com at the
pinned commit into the cache folder. A missing file or a hash that differs is one EclipticaError naming it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..data.io import atomic_write_bytes, sha256_file
from ..errors import EclipticaError

RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class Source:
    name: str  # e.g. "xstest-v2"
    repo: str  # GitHub owner/name
    commit: str  # pinned full commit hash
    files: tuple[tuple[str, str], ...]  # (path in the repository, sha256)
    licence: str
    citation: str = ""

    def url(self, path: str) -> str:
        return RAW.format(repo=self.repo, commit=self.commit, path=path)

    def describe(self) -> dict:
        """The manifest's record of the source."""
        return {
            "repo": f"https://github.com/{self.repo}",
            "commit": self.commit,
            "licence": self.licence,
            "citation": self.citation,
            "files": {p: {"url": self.url(p), "sha256": h} for p, h in self.files},
        }


def cache_dir() -> Path:
    return paths.cache_dir() / "detector-sources"


def _check(path: Path, want: str, what: str) -> Path:
    got = sha256_file(path)
    if got != want:
        raise EclipticaError(
            f"{path}: sha256 {got[:12]}... differs from the pinned {want[:12]}... of {what}; not the file the detectors were built from"
        )
    return path


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise EclipticaError(f"{url}: download failed ({exc}); pass the files' folder instead (--<source> DIR)") from exc
    atomic_write_bytes(dest, data)


def materialise(source: Source, local: Path | None = None) -> dict[str, Path]:
    """{repository path: verified local file} for every file of the source (module docstring)."""
    out: dict[str, Path] = {}
    for path, sha in source.files:
        what = f"{source.name} {source.repo}@{source.commit[:10]}:{path}"
        if local is not None:
            local = Path(local)
            cand = [local / path, local / Path(path).name]
            hit = next((c for c in cand if c.is_file()), None)
            if hit is None:
                raise EclipticaError(f"{local}: {path} (or {Path(path).name}) not found; it is {what}")
            out[path] = _check(hit, sha, what)
            continue
        dest = cache_dir() / source.name / source.commit / path
        if dest.is_file() and sha256_file(dest) == sha:
            out[path] = dest
            continue
        _download(source.url(path), dest)
        out[path] = _check(dest, sha, what)
    return out


XSTEST = Source(
    name="xstest-v2",
    repo="paul-rottger/exaggerated-safety",
    commit="d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d",
    files=(
        ("model_completions/xstest_v2_completions_gpt4.csv", "71af323af8ecdec0efae23992317721441d2cfedddedeef3248f842f4e15c9ca"),
        (
            "model_completions/xstest_v2_completions_llama2new.csv",
            "6365cc55ce0a593c7ab8785853d02784be027d97199d4077912b4313cd010099",
        ),
        (
            "model_completions/xstest_v2_completions_mistralinstruct.csv",
            "6a146b65a5b96ec8249729bc2db459697175125998d7cbbcc88f7688ecf31dad",
        ),
    ),
    licence="CC-BY-4.0",
    citation="Röttger et al., XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in Large Language Models, NAACL 2024",
)
