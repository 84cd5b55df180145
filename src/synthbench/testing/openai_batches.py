"""The fake OpenAI server's Files and Batch API routes (a batch completes after ``batch_polls`` polls)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from synthbench.testing.openai_answers import _FAULT_STATUS, ServerConfig, _error, _json, chat_completion


class BatchRoutes:
    """Mixed into the server: ``files``, ``batches`` and the batch counters live on it."""

    config: ServerConfig
    files: dict[str, dict[str, Any]]
    batches: dict[str, dict[str, Any]]
    batches_created: int
    batch_lines_answered: int
    batch_lines_failed: int

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _json(400, _error("Missing file", "invalid_request_error"))
        purpose = str(form.get("purpose") or "")
        file_id = self._store_file(upload.file.read(), upload.filename or "upload.jsonl", purpose)
        return _json(200, _file_object(file_id, self.files[file_id]))

    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        stored = self.files.get(file_id)
        if stored is None:
            return _json(404, _error(f"No such File object: {file_id}", "invalid_request_error"))
        return _json(200, _file_object(file_id, stored))

    async def _file_content(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return _json(404, _error("No such File object", "invalid_request_error"))
        return web.Response(status=200, body=stored["data"], content_type="application/octet-stream")

    def _store_file(self, data: bytes, filename: str, purpose: str) -> str:
        file_id = f"file-{len(self.files) + 1:06d}"
        self.files[file_id] = {"data": data, "filename": filename, "purpose": purpose}
        return file_id

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        input_id = body.get("input_file_id")
        if input_id not in self.files:
            return _json(404, _error(f"No such File object: {input_id}", "invalid_request_error"))
        self.batches_created += 1
        batch_id = f"batch_{self.batches_created:06d}"
        now = int(time.time())
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "errors": None,
            "input_file_id": input_id,
            "completion_window": body.get("completion_window"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_polls": 0,
        }
        return _json(200, _public(self.batches[batch_id]))

    async def _poll_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self.batches.get(batch_id)
        if batch is None:
            return _json(404, _error(f"No such batch: {batch_id}", "invalid_request_error"))
        batch["_polls"] += 1
        if batch["status"] in ("validating", "in_progress"):
            if batch["_polls"] >= self.config.batch_polls:
                self._complete_batch(batch)
            else:
                batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
        return _json(200, _public(batch))

    def _complete_batch(self, batch: dict[str, Any]) -> None:
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]]["data"].splitlines() if x.strip()]
        out, err = [], []
        for i, line in enumerate(lines, start=1):
            custom_id = line["custom_id"]
            if custom_id in self.config.batch_fail_ids:
                self.config.batch_fail_ids.remove(custom_id)
                self.batch_lines_failed += 1
                response = {"status_code": 500, "request_id": f"req_{i}", "body": _FAULT_STATUS["500"][1]}
                err.append(
                    {"id": f"batch_req_{i}", "custom_id": custom_id, "response": response, "error": None}
                )
                continue
            body = chat_completion(line["body"], number=i, model=self.config.model)
            self.batch_lines_answered += 1
            response = {"status_code": 200, "request_id": f"req_{i}", "body": body}
            out.append({"id": f"batch_req_{i}", "custom_id": custom_id, "response": response, "error": None})
        now = int(time.time())
        batch.update(status="completed", completed_at=now, in_progress_at=batch["in_progress_at"] or now)
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        if out:
            data = "".join(json.dumps(x) + "\n" for x in out).encode()
            batch["output_file_id"] = self._store_file(data, f"{batch['id']}_output.jsonl", "batch_output")
        if err:
            data = "".join(json.dumps(x) + "\n" for x in err).encode()
            batch["error_file_id"] = self._store_file(data, f"{batch['id']}_error.jsonl", "batch_output")


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _file_object(file_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(stored["data"]),
        "created_at": int(time.time()),
        "filename": stored["filename"],
        "purpose": stored["purpose"],
        "status": "processed",
    }
