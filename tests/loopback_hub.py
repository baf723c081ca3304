"""A tiny in-memory Hugging Face Hub on 127.0.0.1, for testing uploads with the real client.

It implements only what `Dataset.push_to_hub` and `magpie_datasets.publish.hub.push_to_hub` call
through `huggingface_hub` (repo info/create, validate-yaml, preupload, the legacy LFS batch
API + single-part PUT, commit, tree, paths-info, resolve). As on the Hub, *.parquet and
*.png go through LFS, the rest inline. Xet storage is not implemented: tests must set
`huggingface_hub.constants.HF_HUB_DISABLE_XET = True`. Commits honour `parentCommit`
(HTTP 412 when stale), so a test can see that nothing is overwritten blindly.

    with LoopbackHub() as hub:          # hub.url -> "http://127.0.0.1:PORT"
        ...                             # point datasets/huggingface_hub at hub.url
        hub.files("me/repo")            # {"README.md": b"...", "data/train-...parquet": b"..."}
        hub.requests                    # [(method, path, authorization header), ...]
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


class _Repo:
    def __init__(self) -> None:
        self.commits: list[tuple[str, dict[str, bytes]]] = []  # (sha, files) oldest first
        self._commit({}, "initial commit")

    @property
    def head(self) -> str:
        return self.commits[-1][0]

    def files(self, revision: str | None = None) -> dict[str, bytes] | None:
        if revision in (None, "main"):
            return self.commits[-1][1]
        for sha, files in self.commits:
            if sha == revision:
                return files
        return None

    def _commit(self, files: dict[str, bytes], message: str) -> str:
        digest = hashlib.sha1(message.encode() + str(len(self.commits)).encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha1(files[path]).digest())
        sha = digest.hexdigest()
        self.commits.append((sha, files))
        return sha


class LoopbackHub:
    """Start with `with LoopbackHub() as hub:`; `hub.url` is the endpoint to use."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.blobs: dict[str, bytes] = {}  # LFS objects by sha256
        self.accounts: dict[str, tuple[str, list[str], str]] = {}  # token -> (user, orgs, role) for whoami
        # Called with (repo_id, commit summary) before a commit is applied; a test can commit
        # something else here (hub.commit_files) to play a concurrent writer.
        self.before_commit = None
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

            def do_PUT(self) -> None:
                hub._handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str) -> dict[str, bytes]:
        return dict(self.repos[repo_id].files())

    def commit_files(self, repo_id: str, changes: dict[str, bytes], message: str = "edit") -> str:
        """Commit directly (as another client would); returns the new head."""
        repo = self.repos[repo_id]
        return repo._commit({**repo.files(), **changes}, message)

    # ------------------------------------------------------------------ HTTP

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        body = self._read_body(request)
        with self.lock:
            self.requests.append((method, path, request.headers.get("Authorization")))
            status, headers, payload = self._route(method, path, query, body, request.headers)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if method != "HEAD":
            request.wfile.write(data)

    @staticmethod
    def _read_body(request: BaseHTTPRequestHandler) -> bytes:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(request.rfile.readline().strip().split(b";")[0], 16)
                chunk = request.rfile.read(size)
                request.rfile.readline()  # CRLF after each chunk
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(request.headers.get("Content-Length") or 0)
        return request.rfile.read(length) if length else b""

    def _route(self, method: str, path: str, query: dict, body: bytes, headers: Any):
        seg = path.strip("/").split("/")
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            objects = json.loads(body)["objects"]
            return 200, {}, {"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"]} if o["oid"] in self.blobs else
                {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}}
                for o in objects
            ]}
        if method == "PUT" and seg[0] == "lfs-upload" and len(seg) == 2:
            if hashlib.sha256(body).hexdigest() != seg[1]:
                return 400, {}, {"error": "sha256 mismatch"}
            self.blobs[seg[1]] = body
            return 200, {}, {}
        if method == "GET" and path == "/api/whoami-v2":
            return self._whoami(headers)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body))
        if len(seg) >= 4 and seg[:2] == ["api", "datasets"]:
            repo_id = f"{seg[2]}/{seg[3]}"
            repo = self.repos.get(repo_id)
            if repo is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, {"error": f"Repository {repo_id} not found"}
            rest = seg[4:]
            if not rest or rest[0] == "revision":
                revision = rest[1] if len(rest) > 1 else None
                return self._info(repo_id, repo, revision)
            revision = rest[1] if len(rest) > 1 else "main"
            files = repo.files(revision)
            if files is None:
                return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": f"Revision {revision} not found"}
            if rest[0] == "preupload" and method == "POST":
                wanted = json.loads(body)["files"]
                return 200, {}, {"files": [
                    {"path": f["path"], "shouldIgnore": False,
                     "uploadMode": "lfs" if f["path"].endswith((".parquet", ".png")) else "regular"}
                    for f in wanted
                ]}
            if rest[0] == "commit" and method == "POST":
                return self._commit(repo_id, repo, body)
            if rest[0] == "tree":
                folder = "/".join(rest[2:])
                recursive = query.get("recursive", ["false"])[0] in ("true", "True", "1")
                return self._tree(files, folder, recursive)
            if rest[0] == "paths-info" and method == "POST":
                try:
                    paths = json.loads(body)["paths"]
                except (ValueError, KeyError):
                    paths = parse_qs(body.decode()).get("paths", [])
                return 200, {}, [e for p in paths for e in self._entries(files, p.strip("/"))]
        if len(seg) >= 5 and seg[0] == "datasets" and seg[3] == "resolve":
            repo = self.repos.get(f"{seg[1]}/{seg[2]}")
            files = repo.files(seg[4]) if repo else None
            file_path = "/".join(seg[5:])
            if files is None or file_path not in files:
                return 404, {"X-Error-Code": "EntryNotFound"}, {"error": "Entry not found"}
            content = files[file_path]
            sha = repo.head if seg[4] == "main" else seg[4]
            etag = f'"{hashlib.sha1(content).hexdigest()}"'
            return 200, {"X-Repo-Commit": sha, "ETag": etag, "Content-Type": "application/octet-stream"}, content
        return 404, {}, {"error": f"loopback hub: no route for {method} {path}"}

    def _whoami(self, headers: Any):
        """The account of a token in `self.accounts` ({token: (user, [orgs], role)}), as the Hub answers."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.accounts:
            return 401, {}, {"error": "Invalid credentials in Authorization header"}
        user, orgs, role = self.accounts[token]
        return 200, {}, {"type": "user", "name": user, "orgs": [{"name": org, "roleInOrg": "write"} for org in orgs],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}}}

    def _validate_yaml(self, payload: dict):
        text = payload.get("content", "")
        if text.startswith("---"):
            try:
                yaml.safe_load(text.split("---", 2)[1])
            except yaml.YAMLError as err:
                return 400, {}, {"errors": [{"message": str(err)}]}
        return 200, {}, {"errors": [], "warnings": []}

    def _create(self, payload: dict):
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if repo_id in self.repos:
            return 409, {}, {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo_id}"}
        self.repos[repo_id] = _Repo()
        return 200, {}, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}

    def _info(self, repo_id: str, repo: _Repo, revision: str | None):
        files = repo.files(revision)
        if files is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": "Revision not found"}
        sha = repo.head if revision in (None, "main") else revision
        return 200, {}, {
            "id": repo_id, "_id": repo_id, "sha": sha, "private": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }

    def _commit(self, repo_id: str, repo: _Repo, body: bytes):
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"]
        if self.before_commit is not None:
            self.before_commit(repo_id, header.get("summary", ""))
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.head:
            return 412, {}, {"error": "A commit has happened since. Please refresh and try again."}
        files = dict(repo.files())
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.blobs:
                    return 422, {}, {"error": f"LFS object {value['oid']} was never uploaded"}
                files[value["path"]] = self.blobs[value["oid"]]
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                for p in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                    del files[p]
            else:
                return 400, {}, {"error": f"loopback hub: unsupported commit operation {line['key']}"}
        sha = repo._commit(files, header.get("summary", ""))
        return 200, {}, {"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{sha}", "commitOid": sha,
                         "pullRequestUrl": None}

    def _entries(self, files: dict[str, bytes], path: str) -> list[dict]:
        if path in files:
            return [self._file_entry(path, files[path])]
        if any(p.startswith(path + "/") for p in files):
            return [{"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}]
        return []

    def _tree(self, files: dict[str, bytes], folder: str, recursive: bool):
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            return 404, {"X-Error-Code": "EntryNotFound"}, {"error": f"{folder} not found"}
        out, dirs = [], set()
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            rel = p[len(prefix):]
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0})
            if recursive or len(parts) == 1:
                out.append(self._file_entry(p, files[p]))
        return 200, {}, out

    @staticmethod
    def _file_entry(path: str, content: bytes) -> dict:
        return {"type": "file", "path": path, "size": len(content), "oid": hashlib.sha1(content).hexdigest()}
