"""Dead letters in Blob Storage: one JSON blob per input that could not be processed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from azure.storage.blob import ContainerClient


class BlobDeadLetters:
    """``deadletters/<source>/<time>-<id>.json`` with the reason and the bytes (as text
    when they are UTF-8, else base64). ``source`` is a partition number or ``ingress``."""

    def __init__(self, container: ContainerClient, prefix: str = "deadletters/") -> None:
        self.container = container
        self.prefix = prefix

    def put(self, source: str, data: bytes, reason: str) -> str:
        now = time.time()
        body: dict[str, Any] = {"source": source, "reason": reason, "time": now}
        try:
            body["text"] = data.decode()
        except UnicodeDecodeError:
            body["base64"] = base64.b64encode(data).decode()
        name = f"{self.prefix}{source}/{int(now * 1000):015d}-{uuid.uuid4().hex[:8]}.json"
        self.container.upload_blob(name, json.dumps(body).encode())
        return name

    def list(self, source: str | None = None) -> list[dict[str, Any]]:
        """Every dead letter (of one source), oldest first, with ``data`` as bytes."""
        prefix = self.prefix + (f"{source}/" if source is not None else "")
        found = []
        for blob in self.container.list_blobs(name_starts_with=prefix):
            body: dict[str, Any] = json.loads(self.container.download_blob(blob.name).readall())
            text = body.pop("text", None)
            encoded = body.pop("base64", None)
            body["data"] = text.encode() if text is not None else base64.b64decode(encoded or "")
            body["name"] = blob.name
            found.append(body)
        found.sort(key=lambda b: (b["time"], b["name"]))
        return found
