#!/usr/bin/env python3
"""Packs a root filesystem tarball into an image archive that `podman load`, `ctr images import`
and `docker load` all accept, without a registry: an OCI image layout (oci-layout, index.json,
blobs/sha256/...) that also carries a Docker-style manifest.json naming the same blobs.

usage: mkimage.py ROOTFS.tar OUT.tar NAME:TAG [CMD...]
"""
import hashlib, io, json, sys, tarfile, time


def blob(archive, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    archive.addfile(info, io.BytesIO(data))
    return digest


def member(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    archive.addfile(info, io.BytesIO(data))


def main():
    rootfs, out, reference = sys.argv[1], sys.argv[2], sys.argv[3]
    command = sys.argv[4:] or ["/bin/sh"]
    name, _, tag = reference.rpartition(":")
    layer = open(rootfs, "rb").read()
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": command, "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "dnsd scripts/mkimage.py"}],
    }, sort_keys=True).encode()
    full_name = name if "/" in name else f"docker.io/library/{name}"
    with tarfile.open(out, "w") as archive:
        blob(archive, layer)
        config_digest = blob(archive, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{config_digest}", "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{layer_digest}", "size": len(layer)}],
        }, sort_keys=True).encode()
        manifest_digest = blob(archive, manifest)
        member(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        member(archive, "index.json", json.dumps({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": f"sha256:{manifest_digest}", "size": len(manifest),
                           "annotations": {"io.containerd.image.name": f"{full_name}:{tag}",
                                           "org.opencontainers.image.ref.name": tag}}],
        }, sort_keys=True).encode())
        member(archive, "manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{config_digest}", "RepoTags": [reference],
            "Layers": [f"blobs/sha256/{layer_digest}"],
        }]).encode())


if __name__ == "__main__":
    main()
