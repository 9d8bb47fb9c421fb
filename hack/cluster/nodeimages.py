"""Container images for the real node without a registry: OCI image-layout archives made here.

The node's containerd can pull nothing (no registry is reachable), so every image it runs is
imported from a local archive with ``ctr images import``:

- **pause** (the pod sandbox): a static binary compiled from the few lines of C below with the
  host's gcc. It sleeps until a signal and reaps zombies, which is all a sandbox does.
- **busybox** (test workloads: CPU loops, memory allocation, ``sleep``): ``/bin/busybox`` from
  Debian's ``busybox-static`` with a link per applet.
- presize's own images come from ``hack/docker/images.py`` (``docker save`` archives).

An archive is the OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) in an
uncompressed tar, with the annotation ``io.containerd.image.name`` on the manifest descriptor:
that is how ``ctr images import`` learns the image's name. Archives are cached under
``$PRESIZE_CACHE/images`` keyed by a hash of their content, so a second node start reuses them.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PAUSE_IMAGE: Final = "presize.local/pause:3.10"
BUSYBOX_IMAGE: Final = "presize.local/busybox:1"
BUSYBOX_BINARY: Final = Path("/bin/busybox")

PAUSE_C: Final = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
  return 0;
}
"""


class ImageError(RuntimeError):
    """An image archive could not be made."""


@dataclass(frozen=True)
class LayerFile:
    """One entry of a layer: a regular file (``data``), or a symlink (``link``)."""

    path: str
    mode: int = 0o755
    data: bytes = b""
    link: str = ""


def _layer_tar(files: Iterable[LayerFile]) -> bytes:
    """An uncompressed, reproducible layer tar (fixed mtimes, owners and order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for f in sorted(files, key=lambda x: x.path):
            parts = f.path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(f.path)
            info.mtime = 0
            if f.link:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, f.link, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(f.data), f.mode
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def oci_archive(name: str, layer: bytes, entrypoint: list[str], cmd: list[str]) -> bytes:
    """A single-layer linux/amd64 image as an OCI image-layout tar, named ``name``."""
    layer_digest, _ = _blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest, _ = _blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest, _ = _blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": name},
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        },
        sort_keys=True,
    ).encode()
    entries = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": index,
        **{
            f"blobs/sha256/{d.split(':', 1)[1]}": b
            for d, b in (_blob(layer), _blob(config), _blob(manifest))
        },
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compile_pause(out: Path) -> None:
    """Compile the static pause binary with the host's gcc."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ImageError("gcc is needed to build the pause image (apt-get install -y gcc)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pause.c"
        src.write_text(PAUSE_C, encoding="ascii")
        proc = subprocess.run(
            [gcc, "-static", "-Os", "-s", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ImageError(f"compiling pause failed: {proc.stderr.strip()}")


def busybox_applets(binary: Path = BUSYBOX_BINARY) -> list[str]:
    """The applet names the busybox binary offers (``busybox --list``)."""
    proc = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(f"{binary} --list failed; install busybox-static")
    return [a for a in proc.stdout.split() if a and a != "busybox"]


def _cached(cache: Path, stem: str, archive: bytes) -> Path:
    digest = hashlib.sha256(archive).hexdigest()[:12]
    path = cache / f"{stem}-{digest}.tar"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(archive)
        tmp.replace(path)
    return path


def pause_archive(cache: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "pause"
        compile_pause(binary)
        layer = _layer_tar([LayerFile("pause", 0o755, binary.read_bytes())])
    return _cached(cache, "pause", oci_archive(PAUSE_IMAGE, layer, ["/pause"], []))


def busybox_archive(cache: Path, binary: Path = BUSYBOX_BINARY) -> Path:
    if not binary.exists():
        raise ImageError(f"{binary} missing: apt-get install -y busybox-static")
    files = [LayerFile("bin/busybox", 0o755, binary.read_bytes())]
    files += [LayerFile(f"bin/{a}", link="busybox") for a in busybox_applets(binary)]
    return _cached(cache, "busybox", oci_archive(BUSYBOX_IMAGE, _layer_tar(files), [], ["sh"]))
