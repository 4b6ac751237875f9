"""A loopback fake of the Hugging Face Hub: just the endpoints datasets 5.2 / huggingface_hub 2.4 use to
push a dataset (push_to_hub, create_commit) and to read files back (hf_hub_download, HfFileSystem).

Files live in memory: each repo has branches -> commit sha, and each commit a snapshot {path: bytes}.
A request the fake does not know is answered 501 and recorded in `FakeHub.unknown` (and printed), so
a missing endpoint shows up at once instead of as a confusing client error.

    hub = FakeHub().start()        # hub.url = "http://127.0.0.1:<port>"
    ...  HF_ENDPOINT=hub.url, HF_TOKEN=<anything>, HF_HUB_DISABLE_XET=1, HF_HUB_OFFLINE unset
    hub.files("user/repo")         # {path: bytes} at main
    hub.stop()

Run it alone (for a subprocess test or by hand): `python tests/hub_server.py` prints the URL and serves
until killed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

EMPTY_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> snapshot
    lfs_paths: dict[str, set[str]] = field(default_factory=dict)  # sha -> paths stored as LFS
    history: list[tuple[str, str]] = field(default_factory=list)  # (sha, summary)

    def resolve(self, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.commits else None


class FakeHub:
    def __init__(self, verbose: bool = False):
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 hex -> bytes
        self.log: list[tuple[str, str]] = []  # (method, path) of every request
        self.unknown: list[str] = []  # requests no handler matched
        self.auth_headers: list[str] = []  # Authorization headers seen (for token checks)
        self.verbose = verbose
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._counter = 0

    # ------------------------------------------------------------------------------------ control
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------------------------ state
    def files(self, repo_id: str, rev: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        repo = self.repos[f"{repo_type}/{repo_id}"]
        return dict(repo.commits[repo.resolve(rev)])

    def create(
        self,
        repo_id: str,
        files: dict[str, bytes] | None = None,
        repo_type: str = "dataset",
        private: bool = False,
        sha: str | None = None,
    ) -> Repo:
        """Create a repo directly (to set up a pre-existing repo in a test); `sha` names its only commit,
        e.g. a revision pinned in prompts/hub_sources.yaml. Parquet files are stored as LFS, as on the hub."""
        with self.lock:
            repo = Repo(repo_id, repo_type, private)
            self.repos[f"{repo_type}/{repo_id}"] = repo
            snapshot = {".gitattributes": EMPTY_GITATTRIBUTES, **(files or {})}
            lfs = {p for p in snapshot if p.endswith(".parquet")}
            self._commit(repo, "main", snapshot, lfs, "initial commit", sha=sha)
            return repo

    def create_from_dir(self, repo_id: str, folder, sha: str | None = None, repo_type: str = "dataset") -> Repo:
        """A repo holding every file under `folder` at the same relative paths."""
        from pathlib import Path

        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.create(repo_id, files, repo_type=repo_type, sha=sha)

    def _commit(
        self, repo: Repo, branch: str, snapshot: dict[str, bytes], lfs: set[str], summary: str, sha: str | None = None
    ) -> str:
        self._counter += 1
        sha = sha or hashlib.sha1(f"{repo.repo_id}:{self._counter}:{time.time_ns()}".encode()).hexdigest()
        repo.commits[sha] = snapshot
        repo.lfs_paths[sha] = lfs
        repo.branches[branch] = sha
        repo.history.append((sha, summary))
        return sha


def front_matter_errors(readme: str) -> list[str]:
    """What the hub's YAML validation would object to in a README: unparsable or malformed configs."""
    import yaml

    m = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n?", readme, re.S)
    if not m:
        return []
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {' '.join(str(exc).split())}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    configs = meta.get("configs", [])
    if not isinstance(configs, list):
        return ['"configs" must be a list']
    for c in configs:
        if not isinstance(c, dict) or "config_name" not in c:
            errors.append('"configs" entries need a config_name')
        elif "data_files" not in c:
            errors.append(f"config {c['config_name']!r} has no data_files")
    if sum(bool(isinstance(c, dict) and c.get("default")) for c in configs) > 1:
        errors.append("more than one default config")
    return errors


# ---------------------------------------------------------------------------------------------- HTTP
_REPO = r"(?P<rtype>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+?)"


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless verbose
        if self.hub.verbose:
            sys.stderr.write("fakehub: " + fmt % args + "\n")

    # -------------------------------------------------------------------------------- plumbing
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None, head: bool = False) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        one_line = " ".join(message.split())[:300]
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": one_line}, head=head)

    def _repo(self, rtype: str, repo_id: str) -> Repo | None:
        return self.hub.repos.get(f"{rtype[:-1]}/{repo_id}")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = unquote(split.path), parse_qs(split.query)
        self.hub.log.append((method, split.path))
        if self.headers.get("Authorization"):
            self.hub.auth_headers.append(self.headers["Authorization"])
        for m, pattern, fn in ROUTES:
            if m != method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                try:
                    with self.hub.lock:
                        return fn(self, query=query, **match.groupdict())
                except Exception as exc:  # a bug in the fake: say so loudly, answer 500 (no retry loop)
                    msg = f"fakehub: HANDLER ERROR {method} {self.path}: {type(exc).__name__}: {exc}"
                    print(msg, file=sys.stderr, flush=True)
                    self.hub.unknown.append(msg)
                    return self._error(500, "FakeHubError", msg)
        msg = f"fakehub: UNKNOWN REQUEST {method} {self.path}"
        print(msg, file=sys.stderr, flush=True)
        self.hub.unknown.append(f"{method} {self.path}")
        body = self._body() if method in ("POST", "PUT") else b""
        del body
        self._error(501, "NotImplemented", msg)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -------------------------------------------------------------------------------- endpoints
    def agent_harnesses(self, query):
        self._send(200, {})

    def whoami(self, query):
        self._send(
            200,
            {
                "type": "user",
                "name": "fakeuser",
                "fullname": "Fake User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"role": "write"}},
            },
        )

    def create_repo(self, query):
        body = json.loads(self._body() or b"{}")
        rtype = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else f"fakeuser/{body['name']}"
        if f"{rtype}/{repo_id}" in self.hub.repos:
            return self._error(409, "RepoExists", "You already created this repo")
        private = bool(body.get("private")) or body.get("visibility") == "private"  # huggingface_hub 2.x sends visibility
        self.hub.create(repo_id, repo_type=rtype, private=private)
        prefix = "" if rtype == "model" else f"{rtype}s/"
        self._send(200, {"url": f"{self.hub.url}/{prefix}{repo_id}", "name": repo_id})

    def repo_info(self, query, rtype, repo, rev="main"):
        r = self._repo(rtype, repo)
        if r is None:
            return self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}")
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        snap = r.commits[sha]
        self._send(
            200,
            {
                "id": r.repo_id,
                "_id": r.repo_id,
                "author": r.repo_id.split("/")[0],
                "sha": sha,
                "private": r.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(snap)],
            },
        )

    def preupload(self, query, rtype, repo, rev):
        r = self._repo(rtype, repo)
        body = json.loads(self._body() or b"{}")
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found")
        files = []
        for f in body.get("files", []):
            # Parquet goes through LFS as on the real hub ("regular" for parquet breaks datasets' flow).
            mode = "lfs" if f["path"].endswith((".parquet", ".arrow", ".bin", ".safetensors")) else "regular"
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": None})
        self._send(200, {"files": files, "commitOid": r.resolve(rev)})

    def lfs_batch(self, query, rtype, repo):
        body = json.loads(self._body() or b"{}")
        objects = []
        for o in body.get("objects", []):
            entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.hub.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/_lfs/{o['oid']}", "header": {}}}
            objects.append(entry)
        self._send(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def lfs_put(self, query, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "BadOid", "sha256 of the uploaded content does not match the oid")
        self.hub.lfs_objects[oid] = data
        self._send(200, raw=b"")

    def _entry(self, r: Repo, sha: str, path: str) -> dict:
        data = r.commits[sha][path]
        e = {"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}
        if path in r.lfs_paths[sha]:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def tree(self, query, rtype, repo, rev, path=""):
        r = self._repo(rtype, repo)
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found")
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        snap = r.commits[sha]
        path = (path or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path}/" if path else ""
        below = [p for p in sorted(snap) if p.startswith(prefix)]
        if path and not below:
            if path in snap:
                return self._send(200, [self._entry(r, sha, path)])
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}")
        out, dirs = [], []
        for p in below:
            rest = p[len(prefix) :]
            if "/" in rest:
                parts = rest.split("/")
                for i in range(1, len(parts) if recursive else 2):
                    d = prefix + "/".join(parts[:i])
                    if d not in dirs:
                        dirs.append(d)
                if not recursive:
                    continue
            out.append(self._entry(r, sha, p))
        folders = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d} for d in dirs]
        self._send(200, folders + out)

    def paths_info(self, query, rtype, repo, rev):
        r = self._repo(rtype, repo)
        raw = self._body().decode()
        form = parse_qs(raw)
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found")
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        snap = r.commits[sha]
        out = []
        for p in form.get("paths", []):
            p = p.strip("/")
            if p in snap:
                out.append(self._entry(r, sha, p))
            elif any(q.startswith(p + "/") for q in snap):
                out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p})
        self._send(200, out)

    def validate_yaml(self, query):
        body = json.loads(self._body() or b"{}")
        errors = front_matter_errors(body.get("content", ""))
        if errors:  # the real hub answers 400 with {"errors": [{"message": ...}]}
            return self._send(400, {"errors": [{"message": e} for e in errors], "warnings": []}, {"X-Error-Code": "InvalidYaml"})
        self._send(200, {"errors": [], "warnings": []})

    def create_branch(self, query, rtype, repo, branch):
        r = self._repo(rtype, repo)
        self._body()
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found")
        if branch in r.branches:
            return self._error(409, "BranchExists", f"Reference already exists: refs/heads/{branch}")
        r.branches[branch] = r.branches["main"]
        self._send(200, {})

    def commit(self, query, rtype, repo, rev):
        r = self._repo(rtype, repo)
        lines = [json.loads(x) for x in self._body().decode().splitlines() if x.strip()]
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found")
        branch = unquote(rev)
        if branch not in r.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        head = r.branches[branch]
        snap, lfs = dict(r.commits[head]), set(r.lfs_paths[head])
        summary = ""
        for line in lines:
            key, v = line["key"], line["value"]
            if key == "header":
                summary = v.get("summary", "")
                parent = v.get("parentCommit")
                if parent and parent != head:
                    return self._error(412, "PreconditionFailed", "A commit has happened since parentCommit")
            elif key == "file":
                if v.get("encoding", "base64") != "base64":
                    return self._error(400, "BadEncoding", "only base64 file content is supported")
                snap[v["path"]] = base64.b64decode(v["content"])
                lfs.discard(v["path"])
            elif key == "lfsFile":
                if v["oid"] not in self.hub.lfs_objects:
                    return self._error(400, "LfsMissing", f"LFS object {v['oid']} was never uploaded")
                snap[v["path"]] = self.hub.lfs_objects[v["oid"]]
                lfs.add(v["path"])
            elif key == "deletedFile":
                snap.pop(v["path"], None)
                lfs.discard(v["path"])
            elif key == "deletedFolder":
                pre = v["path"].rstrip("/") + "/"
                for p in [p for p in snap if p.startswith(pre)]:
                    snap.pop(p)
                    lfs.discard(p)
            else:
                print(f"fakehub: UNKNOWN COMMIT OPERATION {key}", file=sys.stderr, flush=True)
                self.hub.unknown.append(f"commit operation {key}")
                return self._error(400, "UnknownOperation", f"unknown commit operation {key}")
        sha = self.hub._commit(r, branch, snap, lfs, summary)
        prefix = "" if r.repo_type == "model" else f"{r.repo_type}s/"
        self._send(200, {"commitUrl": f"{self.hub.url}/{prefix}{r.repo_id}/commit/{sha}", "commitOid": sha, "success": True})

    def _resolve(self, query, rtype, repo, rev, path, head):
        r = self._repo(rtype, repo)
        if r is None:
            return self._error(404, "RepoNotFound", "Repository Not Found", head=head)
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
        snap = r.commits[sha]
        if path not in snap:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", head=head)
        data = snap[path]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{git_blob_sha(data)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        if path in r.lfs_paths[sha]:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
            headers["ETag"] = headers["X-Linked-Etag"]
        rng = self.headers.get("Range")
        if rng and not head:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1) or 0)
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                part = data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(data)}"
                return self._send(206, headers=headers, raw=part)
        if head:
            return self._send_head(headers, len(data))
        self._send(200, headers=headers, raw=data)

    def _send_head(self, headers: dict, length: int) -> None:
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def resolve_get(self, query, rtype, repo, rev, path):
        self._resolve(query, rtype, repo, rev, path, head=False)

    def resolve_head(self, query, rtype, repo, rev, path):
        self._resolve(query, rtype, repo, rev, path, head=True)


_REV = r"(?P<rev>[^/]+)"
ROUTES = [
    ("GET", r"/api/agent-harnesses", _Handler.agent_harnesses),
    ("GET", r"/api/whoami-v2", _Handler.whoami),
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("GET", rf"/api/{_REPO}/revision/{_REV}", _Handler.repo_info),
    ("GET", rf"/api/{_REPO}", _Handler.repo_info),
    ("POST", rf"/api/{_REPO}/preupload/{_REV}", _Handler.preupload),
    ("GET", rf"/api/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", _Handler.tree),
    ("POST", rf"/api/{_REPO}/paths-info/{_REV}", _Handler.paths_info),
    ("POST", rf"/api/{_REPO}/branch/(?P<branch>.+)", _Handler.create_branch),
    ("POST", rf"/api/{_REPO}/commit/{_REV}", _Handler.commit),
    ("POST", r"/(?P<rtype>datasets|spaces)/(?P<repo>[^/]+/[^/]+?)\.git/info/lfs/objects/batch", _Handler.lfs_batch),
    ("POST", r"/(?P<repo>[^/]+/[^/]+?)\.git/info/lfs/objects/batch", lambda h, query, repo: h.lfs_batch(query, "models", repo)),
    ("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", _Handler.lfs_put),
    ("GET", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", _Handler.resolve_get),
    ("HEAD", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", _Handler.resolve_head),
]


if __name__ == "__main__":
    hub = FakeHub(verbose="-v" in sys.argv).start()
    print(hub.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()
