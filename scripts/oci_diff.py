#!/usr/bin/env python3
"""Say what differs between two OCI image archives: `python3 scripts/oci_diff.py A.tar B.tar`.

Prints the image config fields that differ, then per layer the files whose type, mode, owner,
mtime, size, link target or content differ (or that exist on one side only). Standard library
only, so it runs on any machine that builds the image; diffoscope, when installed, goes deeper
into the bytes of a file (the command is printed). Exit status 0 when nothing differs, 1 otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
import tarfile
from typing import Any

LIMIT = 40  # differing files printed per layer


def _blob(archive: tarfile.TarFile, digest: str) -> bytes:
    algorithm, value = digest.split(":", 1)
    member = archive.extractfile(f"blobs/{algorithm}/{value}")
    if member is None:
        raise ValueError(f"blob {digest} missing")
    return member.read()


def read_image(path: str) -> tuple[str, dict[str, Any], list[dict[str, tuple]]]:
    """The manifest digest, the config, and per layer {path: attributes}."""
    with tarfile.open(path) as archive:
        index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
        digest = index["manifests"][0]["digest"]
        manifest = json.loads(_blob(archive, digest))
        config = json.loads(_blob(archive, manifest["config"]["digest"]))
        layers = []
        for layer in manifest["layers"]:
            data = _blob(archive, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            layers.append(_files(data))
    return digest, config, layers


def _files(tar_bytes: bytes) -> dict[str, tuple]:
    import io

    files: dict[str, tuple] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as layer:
        for entry in layer:
            content = ""
            if entry.isfile():
                handle = layer.extractfile(entry)
                content = hashlib.sha256(handle.read() if handle else b"").hexdigest()[:16]
            files[entry.name] = (
                entry.type.decode(),
                oct(entry.mode),
                f"{entry.uid}:{entry.gid}",
                entry.mtime,
                entry.size,
                entry.linkname,
                content,
            )
    return files


FIELDS = ("type", "mode", "owner", "mtime", "size", "link", "sha256")


def compare(a: str, b: str) -> list[str]:
    digest_a, config_a, layers_a = read_image(a)
    digest_b, config_b, layers_b = read_image(b)
    lines: list[str] = []
    if digest_a == digest_b:
        return lines
    lines.append(f"manifest {digest_a} vs {digest_b}")
    for key in sorted(set(config_a) | set(config_b)):
        if key != "rootfs" and config_a.get(key) != config_b.get(key):
            lines.append(f"config.{key}: {config_a.get(key)!r} vs {config_b.get(key)!r}")
    if len(layers_a) != len(layers_b):
        lines.append(f"layer count {len(layers_a)} vs {len(layers_b)}")
    for number, (files_a, files_b) in enumerate(zip(layers_a, layers_b, strict=False)):
        differing = []
        for name in sorted(set(files_a) | set(files_b)):
            left, right = files_a.get(name), files_b.get(name)
            if left == right:
                continue
            if left is None or right is None:
                differing.append(f"  {name}: only in {'second' if left is None else 'first'}")
                continue
            what = [
                f"{field} {x} vs {y}"
                for field, x, y in zip(FIELDS, left, right, strict=True)
                if x != y
            ]
            differing.append(f"  {name}: {', '.join(what)}")
        if differing:
            lines.append(f"layer {number}: {len(differing)} file(s) differ")
            lines += differing[:LIMIT]
            if len(differing) > LIMIT:
                lines.append(f"  ... and {len(differing) - LIMIT} more")
    if shutil.which("diffoscope"):
        lines.append(f"byte-level detail: diffoscope {a} {b}")
    else:
        lines.append("byte-level detail: apt-get install diffoscope, then diffoscope A.tar B.tar")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: oci_diff.py A.tar B.tar", file=sys.stderr)
        return 2
    try:
        lines = compare(*argv)
    except (OSError, KeyError, ValueError, tarfile.TarError) as exc:
        print(f"oci_diff.py: cannot read the archives: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "identical manifests")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
