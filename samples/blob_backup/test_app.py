from __future__ import annotations

import random
from pathlib import Path

import pytest

from hosts.emulator import Emulator, Faults
from reactive import App
from samples.blob_backup.app import Backup, BackupConfig, CopyBlob, ListBlobs, app


def make_blobs(root: Path, count: int = 12, seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    blobs = {
        f"{'logs/' if i % 3 == 0 else ''}blob-{i:02}.bin": rng.randbytes(rng.randint(0, 5000))
        for i in range(count)
    }
    for name, data in blobs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return blobs


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def backup(tmp_path: Path, name: str, faults: Faults | None = None) -> tuple[Emulator, int, Path]:
    source, destination = tmp_path / "source", tmp_path / name
    app.configure(BackupConfig(source=str(source), destination=str(destination)))
    em = Emulator(app, partitions=4, faults=faults)
    return em, em.client().perform(Backup()), destination


def test_backup_copies_every_blob(tmp_path: Path) -> None:
    blobs = make_blobs(tmp_path / "source")
    em, total, destination = backup(tmp_path, "backup")
    assert contents(destination) == blobs
    assert total == sum(len(data) for data in blobs.values()) > 0
    assert em.app_lines() == [f"backed up {len(blobs)} blobs, {total} bytes"]


def test_empty_source(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    _, total, destination = backup(tmp_path, "backup")
    assert total == 0
    assert not destination.exists()


def test_missing_config_fails() -> None:
    bare = App("blob_backup-unconfigured")
    bare.register(Backup, ListBlobs, CopyBlob)
    with pytest.raises(ValueError, match="configure"):
        Emulator(bare).client().perform(Backup())


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_backup_under_faults(tmp_path: Path, seed: int) -> None:
    blobs = make_blobs(tmp_path / "source", count=20, seed=seed)
    _, expected, _ = backup(tmp_path, "clean")
    faults = Faults(roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=seed)
    em, total, destination = backup(tmp_path, "faulty", faults)
    assert total == expected == sum(len(data) for data in blobs.values())
    assert contents(destination) == blobs  # no leftover temporary files either
    assert em.activity_runs > len(blobs) + 1  # some activities really ran more than once
    assert em.app_lines().count(f"backed up {len(blobs)} blobs, {total} bytes") == 1
