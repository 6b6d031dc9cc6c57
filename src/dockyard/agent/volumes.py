"""Pod volumes on the node: emptyDir, configMap, secret, downwardAPI and (when allowed) hostPath.

Layout: DATA_DIR/pods/<uid>/volumes/<volume name>/ (inside the runtime's data dir, so the
runtime accepts them as mount sources). configMap and secret volumes are written as the kubelet
does: the files in a timestamped dir, `..data` a symlink to it, each key a symlink through
`..data`, so an update swaps all keys at once.

Invariants:
- A hostPath outside the agent's allowed roots is refused with VolumeError naming it.
- Key paths (`items[].path`) stay inside the volume (validated by the api server, checked again).
- remove_pod_volumes deletes only DATA_DIR/pods/<uid>, never a hostPath's contents.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from dockyard.agent.podspec import PodContext, field_value, object_data
from dockyard.runtime import Mount

Obj = dict[str, Any]


class VolumeError(ValueError):
    """A volume that cannot be set up (Kubernetes reports FailedMount)."""


def pod_dir(data_dir: Path, uid: str) -> Path:
    """Return the pod's directory under the agent's data dir."""
    return data_dir / "pods" / uid


def prepare_volumes(data_dir: Path, pod: Obj, ctx: PodContext,
                    allowed_host_paths: list[Path]) -> dict[str, Path]:  # fmt: skip
    """Make (or refresh) the pod's volumes; return volume name → host path."""
    uid = str(pod["metadata"]["uid"])
    base = pod_dir(data_dir, uid) / "volumes"
    out: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume.get("name"))
        target = base / name
        if "hostPath" in volume:
            out[name] = _host_path(volume["hostPath"], allowed_host_paths)
        elif "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)
            out[name] = target
        elif "configMap" in volume or "secret" in volume:
            secret = "secret" in volume
            source = volume["secret" if secret else "configMap"]
            obj_name = str(source.get("secretName" if secret else "name", ""))
            obj = (ctx.secrets if secret else ctx.config_maps).get(obj_name)
            if obj is None and not source.get("optional"):
                kind = "secret" if secret else "configmap"
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : '
                                  f'{kind} "{obj_name}" not found')  # fmt: skip
            files = _key_files(object_data(obj, secret), source, name)
            write_atomic_dir(target, files, int(source.get("defaultMode", 0o644)))
            out[name] = target
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            files = {}
            for item in source.get("items") or []:
                if "fieldRef" in item:
                    files[str(item["path"])] = field_value(pod, item["fieldRef"]["fieldPath"], ctx)
            write_atomic_dir(target, files, int(source.get("defaultMode", 0o644)))
            out[name] = target
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise VolumeError(f'volume "{name}": source {", ".join(kinds) or "(none)"} is not '
                              "supported by this node (emptyDir, configMap, secret, downwardAPI, "
                              "hostPath are)")  # fmt: skip
    return out


def _host_path(source: Obj, allowed: list[Path]) -> Path:
    path = Path(str(source.get("path", "")))
    resolved = path.resolve()
    if not any(resolved == root.resolve() or root.resolve() in resolved.parents
               for root in allowed):  # fmt: skip
        raise VolumeError(f"hostPath {path} is not allowed on this node (the agent allows "
                          f"{', '.join(map(str, allowed)) or 'no host paths'}; see "
                          "--allow-host-path)")  # fmt: skip
    kind = str(source.get("type") or "")
    if kind in ("DirectoryOrCreate",) and not resolved.exists():
        resolved.mkdir(parents=True, mode=0o755)
    elif kind == "FileOrCreate" and not resolved.exists():
        resolved.touch(0o644)
    elif kind in ("Directory", "File", "Socket") and not resolved.exists():
        raise VolumeError(f"hostPath type check failed: {path} does not exist")
    return resolved


def _key_files(data: dict[str, str], source: Obj, volume: str) -> dict[str, str]:
    items = source.get("items")
    if not items:
        return dict(data)
    files = {}
    for item in items:
        key = str(item.get("key"))
        if key not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f'volume "{volume}": key {key} not found')
        files[str(item.get("path", key))] = data[key]
    return files


def write_atomic_dir(target: Path, files: dict[str, str], mode: int) -> None:
    """Write files as the kubelet's atomic writer: a new timestamped dir and a `..data` swap."""
    target.mkdir(parents=True, exist_ok=True)
    current = target / "..data"
    if current.is_symlink() and _same(current, files):
        return
    for rel in files:
        if rel.startswith("/") or ".." in Path(rel).parts or rel.startswith(".."):
            raise VolumeError(f"key path {rel!r} leaves the volume")
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, text in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    tmp = target / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp.name)
    old = os.readlink(current) if current.is_symlink() else None
    os.replace(tmp, current)
    for rel in files:
        top = rel.split("/", 1)[0]
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and not entry.exists():
            entry.unlink()
    if old:
        shutil.rmtree(target / old, ignore_errors=True)


def _same(current: Path, files: dict[str, str]) -> bool:
    try:
        existing = {str(p.relative_to(current.resolve())): p.read_text()
                    for p in current.resolve().rglob("*") if p.is_file()}  # fmt: skip
    except OSError:
        return False
    return existing == files


def container_mounts(container: Obj, volumes: dict[str, Path]) -> list[Mount]:
    """Return the container's bind mounts from its volumeMounts."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volumes[str(vm["name"])]
        sub = str(vm.get("subPath") or "")
        if sub:
            if sub.startswith("/") or ".." in Path(sub).parts:
                raise VolumeError(f"subPath {sub!r} leaves the volume")
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, str(vm["mountPath"]), bool(vm.get("readOnly"))))
    return mounts


def remove_pod_volumes(data_dir: Path, uid: str) -> None:
    """Delete the pod's directory (emptyDirs, projected files)."""
    shutil.rmtree(pod_dir(data_dir, uid), ignore_errors=True)
