"""Back up a "container" of blobs: one activity lists them, one activity per blob copies it,
all copies run in parallel, and the orchestration returns the number of bytes copied.
Local folders stand in for blob containers; ``BackupConfig`` names them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from pydantic import BaseModel

from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext

app = App("blob_backup")


class BackupConfig(BaseModel):
    source: str
    destination: str


@app.register
class ListBlobs(Activity[list[str]]):
    """The names (relative paths) of every file under ``folder``, sorted."""

    folder: str

    def execute(self, ctx: ActivityContext) -> list[str]:
        root = Path(self.folder)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@app.register
class CopyBlob(Activity[int]):
    """Copies one file; returns its size. Safe to run twice: the copy is written to a
    temporary name and renamed into place."""

    source: str
    destination: str
    name: str

    def execute(self, ctx: ActivityContext) -> int:
        src, dst = Path(self.source, self.name), Path(self.destination, self.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
        return dst.stat().st_size


@app.register
class Backup(Orchestration[int]):
    """Copies every blob of the configured source to the configured destination."""

    async def execute(self, ctx: OrchestrationContext) -> int:
        config = ctx.config(BackupConfig)
        if config is None:
            raise ValueError("configure the folders with app.configure(BackupConfig(...))")
        names = await ctx.perform(ListBlobs(folder=config.source))
        copies = [
            ctx.perform(CopyBlob(source=config.source, destination=config.destination, name=n))
            for n in names
        ]
        sizes: list[int] = await ctx.all(*copies)
        total = sum(sizes)
        ctx.log.info("backed up %d blobs, %d bytes", len(names), total)
        return total
