"""A fake Hugging Face Hub HTTP service on 127.0.0.1, just enough of its REST API for ``datasets``'
``push_to_hub`` and ``HfApi.upload_file`` to run their real code against it (``HF_ENDPOINT`` points there).

Implemented: YAML validation (always valid), repo create, repo info, tree listing, file download/HEAD (404
unless committed), preupload (``.parquet`` answered "lfs", other files "regular"), the LFS batch API with the
"basic" transfer (one PUT per object; the client must run with ``HF_HUB_DISABLE_XET=1``, since Xet's chunk
protocol is not faked), and commits (NDJSON: header, inline and LFS file entries), stored so a test can read back
exactly what was pushed. Any other request is recorded in ``unknown`` and answered 404.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}  # "user/name" → path → content
        self.commits: list[
            dict[str, Any]
        ] = []  # {"repo", "summary", "files": {path: bytes}, "deleted": [...]}
        self.created: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []  # bodies of /api/validate-yaml
        self.lfs: dict[str, bytes] = {}  # sha256 → content PUT through the LFS "basic" transfer
        self.unknown: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        payload: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if raw is not None else "application/json"
        )
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _repo(self, parts: list[str]) -> str:
        return f"{parts[0]}/{parts[1]}"

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlparse(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "whoami-v2"]:
            return self._send(
                200, {"name": "tester", "type": "user", "auth": {"accessToken": {"role": "write"}}}
            )
        if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
            repo = self._repo(parts[2:])
            if repo not in self.server.repos:
                return self._send(
                    404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"}
                )
            files = self.server.repos[repo]
            if len(parts) >= 6 and parts[4] == "tree":
                prefix = "/".join(parts[6:])
                entries = [
                    {"type": "file", "path": p, "size": len(c), "oid": COMMIT}
                    for p, c in files.items()
                    if not prefix or p.startswith(prefix + "/")
                ]
                if prefix and not entries:  # as the hub answers a folder that does not exist
                    return self._send(
                        404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"}
                    )
                return self._send(200, entries)
            return self._send(
                200,
                {"id": repo, "sha": COMMIT, "private": False, "siblings": [{"rfilename": p} for p in files]},
            )
        if parts[0] == "datasets" and len(parts) >= 5 and parts[3] == "resolve":
            repo, file_path = self._repo(parts[1:]), "/".join(parts[5:])
            content = self.server.repos.get(repo, {}).get(file_path)
            if content is None:
                return self._send(
                    404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"}
                )
            return self._send(200, raw=content, headers={"X-Repo-Commit": COMMIT, "ETag": f'"{COMMIT}"'})
        self.server.unknown.append(f"GET {self.path}")
        self._send(404, {"error": "not implemented in the fake hub"})

    def do_PUT(self) -> None:
        path = urlparse(self.path).path
        if path.startswith("/_lfs/"):
            self.server.lfs[path.rsplit("/", 1)[1]] = self._body()
            return self._send(200, {})
        self.server.unknown.append(f"PUT {self.path}")
        self._send(404, {"error": "not implemented in the fake hub"})

    def do_POST(self) -> None:
        path = unquote(urlparse(self.path).path)
        parts = path.strip("/").split("/")
        body = self._body()
        if parts[:2] == ["api", "validate-yaml"]:  # the hub checks a card's YAML header before a commit
            self.server.validated.append(json.loads(body))
            return self._send(200, {"errors": [], "warnings": []})
        if parts[:3] == ["api", "repos", "create"]:
            payload = json.loads(body)
            repo = f"{payload.get('organization') or 'tester'}/{payload['name']}"
            self.server.created.append(payload)
            self.server.repos.setdefault(repo, {})
            return self._send(200, {"url": f"{self.server.url}/datasets/{repo}", "name": repo})
        if parts[:2] == ["api", "datasets"] and len(parts) >= 5 and parts[4] == "preupload":
            files = json.loads(body).get("files", [])
            return self._send(
                200,
                {
                    "files": [
                        {
                            "path": f["path"],
                            "shouldIgnore": False,
                            "oid": None,
                            "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                        }
                        for f in files
                    ],
                    "commitOid": COMMIT,
                },
            )
        if path.endswith(".git/info/lfs/objects/batch"):  # LFS batch: where to PUT each object
            objects = json.loads(body)["objects"]
            return self._send(
                200,
                {
                    "transfer": "basic",
                    "objects": [
                        {
                            "oid": o["oid"],
                            "size": o["size"],
                            "actions": {"upload": {"href": f"{self.server.url}/_lfs/{o['oid']}"}},
                        }
                        for o in objects
                    ],
                },
            )
        if parts[:2] == ["api", "datasets"] and len(parts) >= 5 and parts[4] == "commit":
            repo = self._repo(parts[2:])
            commit: dict[str, Any] = {"repo": repo, "files": {}, "deleted": []}
            for line in body.decode().splitlines():
                entry = json.loads(line)
                value = entry.get("value", {})
                if entry["key"] == "header":
                    commit["summary"] = value.get("summary")
                elif entry["key"] == "file":
                    commit["files"][value["path"]] = base64.b64decode(value["content"])
                elif entry["key"] == "lfsFile":
                    commit["files"][value["path"]] = self.server.lfs[value["oid"]]
                elif entry["key"] in ("deletedFile", "deletedFolder"):
                    commit["deleted"].append(value["path"])
                else:
                    commit.setdefault("other", []).append(entry["key"])
            self.server.commits.append(commit)
            files = self.server.repos.setdefault(repo, {})
            for deleted in commit["deleted"]:
                files.pop(deleted, None)
            files.update(commit["files"])
            return self._send(
                200,
                {
                    "success": True,
                    "commitOid": COMMIT,
                    "commitUrl": f"{self.server.url}/datasets/{repo}/commit/{COMMIT}",
                },
            )
        self.server.unknown.append(f"POST {self.path}")
        self._send(404, {"error": "not implemented in the fake hub"})


@contextlib.contextmanager
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.shutdown()
        hub.server_close()
