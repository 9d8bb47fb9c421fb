"""``FileProfileStore``: workload profiles as JSON files, for Docker (no Kubernetes objects).

One file per workload in one directory, written atomically: the JSON goes to a temporary file
in the same directory, is flushed and ``fsync``-ed, then ``os.replace``-d over the old file,
and the directory is ``fsync``-ed so the rename itself survives a power cut. A reader (or a
crash) therefore sees the old profile or the new one, never half of one.

File names are ``<kind>-<name>-<hash>.json``: readable, safe for any service or container
name, and unique per key through a hash of the full key; the key itself is stored inside the
file, which is what :meth:`load_all` trusts. A file that cannot be read or decoded is logged
and skipped: one corrupt profile must not cost the others.

File I/O runs in a worker thread so the controller's event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from controller.errors import StoreError
from presize.model import OwnerKind, WorkloadKey

log = logging.getLogger(__name__)

FORMAT = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def file_name(key: WorkloadKey) -> str:
    """The file that holds ``key``'s profile (pure)."""
    digest = hashlib.sha256(str(key).encode()).hexdigest()[:12]
    readable = _UNSAFE.sub("_", f"{key.namespace}-{key.kind.value}-{key.name}")[:80]
    return f"{readable}-{digest}.json"


def encode(key: WorkloadKey, status: Mapping[str, object]) -> bytes:
    """The file's bytes; raises :class:`StoreError` for a status that is not JSON-safe."""
    document = {
        "format": FORMAT,
        "key": {"namespace": key.namespace, "kind": key.kind.value, "name": key.name},
        "status": status,
    }
    try:
        return json.dumps(document, sort_keys=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"profile of {key} is not JSON-safe: {exc}") from exc


def decode(data: bytes) -> tuple[WorkloadKey, Mapping[str, object]]:
    """A file's key and profile; raises :class:`StoreError` when it is not one of ours."""
    try:
        document = json.loads(data)
        raw = document["key"]
        key = WorkloadKey(str(raw["namespace"]), OwnerKind(raw["kind"]), str(raw["name"]))
        status = document["status"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"not a profile file: {exc!r}") from exc
    if not isinstance(status, dict):
        raise StoreError("not a profile file: status is not an object")
    return key, status


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileProfileStore:
    """The :class:`controller.orchestrator.ProfileStore` over the JSON files in ``directory``
    (created on first save)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _load_all(self) -> dict[WorkloadKey, Mapping[str, object]]:
        out: dict[WorkloadKey, Mapping[str, object]] = {}
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.json")):
            try:
                key, status = decode(path.read_bytes())
            except (OSError, StoreError) as exc:
                log.warning("skipping profile file %s: %s", path, exc)
                continue
            out[key] = status
        return out

    def _save(self, key: WorkloadKey, status: Mapping[str, object]) -> None:
        data = encode(key, status)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.dir / file_name(key), data)
        except OSError as exc:
            raise StoreError(f"cannot write the profile of {key} in {self.dir}: {exc}") from exc

    async def load_all(self) -> dict[WorkloadKey, Mapping[str, object]]:
        try:
            return await asyncio.to_thread(self._load_all)
        except OSError as exc:
            raise StoreError(f"cannot read profiles from {self.dir}: {exc}") from exc

    async def save(self, key: WorkloadKey, status: Mapping[str, object]) -> None:
        await asyncio.to_thread(self._save, key, status)
