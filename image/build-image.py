#!/usr/bin/env python3
"""Builds the Multus image as an OCI image archive without a container engine.

The image is `scratch` plus two statically linked binaries in /usr/bin:
`multus-operator` (entrypoint) and `multus` (installed onto the nodes by the
node agent). The archive is an OCI image layout in a tar file, also carrying
a Docker `manifest.json`, so both `ctr images import` and `docker load`
accept it. Output is deterministic: the same binaries give the same bytes.

Usage: build-image.py --operator BIN --plugin BIN --image REPO:TAG --output FILE
"""

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile


def tar_bytes(entries):
    """A deterministic tar of (path, mode, bytes or None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(operator, plugin, image):
    if ":" not in image.rsplit("/", 1)[-1]:
        raise SystemExit(f"--image {image!r} needs a tag (REPO:TAG)")
    tag = image.rsplit(":", 1)[1]
    layer = tar_bytes([
        ("usr/", 0o755, None),
        ("usr/bin/", 0o755, None),
        ("usr/bin/multus", 0o755, plugin),
        ("usr/bin/multus-operator", 0o755, operator),
    ])
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(layer)
    layer_gz = gz.getvalue()
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/multus-operator"],
            "Env": ["PATH=/usr/bin"],
            "Labels": {"org.opencontainers.image.title": "multus",
                       "org.opencontainers.image.version": tag},
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        "history": [{"created_by": "image/build-image.py: multus-operator and multus"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer_gz), "size": len(layer_gz)}],
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": image,
                                       "org.opencontainers.image.ref.name": tag}}],
    })
    blob = lambda data: "blobs/sha256/" + hashlib.sha256(data).hexdigest()
    docker_manifest = canonical([{
        "Config": blob(config), "RepoTags": [image], "Layers": [blob(layer_gz)],
    }])
    return tar_bytes([
        ("blobs/", 0o755, None),
        ("blobs/sha256/", 0o755, None),
        (blob(config), 0o644, config),
        (blob(layer_gz), 0o644, layer_gz),
        (blob(manifest), 0o644, manifest),
        ("index.json", 0o644, index),
        ("manifest.json", 0o644, docker_manifest),
        ("oci-layout", 0o644, canonical({"imageLayoutVersion": "1.0.0"})),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operator", required=True, help="multus-operator binary")
    parser.add_argument("--plugin", required=True, help="multus plugin binary")
    parser.add_argument("--image", required=True, help="image reference REPO:TAG")
    parser.add_argument("--output", required=True, help="archive to write")
    args = parser.parse_args()
    try:
        with open(args.operator, "rb") as f:
            operator = f.read()
        with open(args.plugin, "rb") as f:
            plugin = f.read()
    except OSError as e:
        sys.exit(f"build-image: {e}")
    data = build(operator, plugin, args.image)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    import os
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({len(data)} bytes) for {args.image}")


if __name__ == "__main__":
    main()
