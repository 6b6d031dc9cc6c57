"""Dockerfile builds for real: RUN in runc over overlayfs, layers from the upper dir, the
cache, reproducible digests, and failures that leave nothing behind."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.images.builder import Builder, BuildError, BuildEvent, BuildOptions
from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures

pytestmark = pytest.mark.integration

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG GREETING=hello
FROM busybox AS base
ARG GREETING
ENV APP=/app \\
    MODE=test
WORKDIR $APP
COPY --chmod=600 data/ ./data/
ADD bundle.tar.gz /opt/
RUN echo "$GREETING $MODE" > greeting && rm /etc/group && mkdir -p /var/x
FROM scratch AS tiny
COPY --from=base /app/greeting /g
FROM base
COPY --from=tiny /g /copied
COPY --chown=65534:65534 <<EOF /etc/motd
welcome
EOF
RUN <<EOF
echo from heredoc > /heredoc
EOF
USER nobody
EXPOSE 80 53/udp
LABEL org.example.team="images" version=1
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- http://localhost/ || exit 1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/greeting"]
"""


def make_context(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "one.txt").write_text("one\n")
    (root / "data" / "two.txt").write_text("two\n")
    (root / "data" / "skip.log").write_text("ignored\n")
    (root / ".dockerignore").write_text("**/*.log\n")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("bundle/readme")
        payload = b"from the archive\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (root / "bundle.tar.gz").write_bytes(raw.getvalue())
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


def build(store: ImageStore, context: Path, events: list[BuildEvent] | None = None,
          **kwargs: object) -> Image:  # fmt: skip
    settings: dict[str, object] = {"tags": ["built:1"], **kwargs}
    options = BuildOptions(context, runc_root=store.data_dir / "runc",
                           **settings)  # type: ignore[arg-type]
    sink = events.append if events is not None else None
    return asyncio.run(Builder(store, options, sink).build())


def layer_files(store: ImageStore, image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    with gzip.open(store.blob_path(image.layers[index].digest)) as f, \
            tarfile.open(fileobj=f) as tar:
        return {m.name: m for m in tar}


def overlay_mounts_under(path: Path) -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [line for line in text.splitlines() if str(path) in line]


def test_build_gives_the_config_layers_and_history(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "ctx")
    image = build(image_store, context, build_args={"GREETING": "bonjour"})
    run = image.run_config
    assert "APP=/app" in run["Env"] and "MODE=test" in run["Env"]
    assert run["WorkingDir"] == "/app"
    assert run["User"] == "nobody"
    assert run["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert run["Labels"] == {"org.example.team": "images", "version": "1"}
    assert run["Volumes"] == {"/data": {}}
    assert run["StopSignal"] == "SIGQUIT"
    assert run["Healthcheck"]["Interval"] == 5_000_000_000
    assert run["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert run["Entrypoint"] == ["/bin/sh", "-c"] and run["Cmd"] == ["cat /app/greeting"]
    history = image.config["history"]
    with_layers = [h for h in history if not h.get("empty_layer")]
    assert len(with_layers) == len(image.layers)
    # busybox + WORKDIR + COPY + ADD + RUN + COPY --from + COPY heredoc + RUN heredoc
    assert len(image.layers) == 8

    copy = layer_files(image_store, image, 2)
    assert sorted(n for n in copy if n.startswith("app/data/")) == ["app/data/one.txt",
                                                                      "app/data/two.txt"]
    assert copy["app/data/one.txt"].mode == 0o600 and copy["app/data/one.txt"].mtime == 0
    assert "opt/bundle/readme" in layer_files(image_store, image, 3)
    run_layer = layer_files(image_store, image, 4)
    assert "etc/.wh.group" in run_layer and "app/greeting" in run_layer
    motd = layer_files(image_store, image, 6)["etc/motd"]
    assert (motd.uid, motd.gid) == (65534, 65534)

    rootfs = image_store.unpacked_layers(image)
    greeting = next(p / "app/greeting" for p in rootfs if (p / "app/greeting").exists())
    assert greeting.read_text() == "bonjour test\n"
    assert any((p / "copied").exists() for p in rootfs)
    assert any((p / "heredoc").read_text() == "from heredoc\n" for p in rootfs
               if (p / "heredoc").exists())


def test_cache_hit_does_no_work_and_a_changed_file_rebuilds_from_its_step(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "ctx")
    first = build(image_store, context)
    events: list[BuildEvent] = []
    second = build(image_store, context, events)
    assert second.manifest_digest == first.manifest_digest
    assert not [e for e in events if e.kind in ("done", "output")]
    assert len([e for e in events if e.kind == "cached"]) == 8  # 7 in the image, 1 in tiny

    (context / "data" / "two.txt").write_text("changed\n")
    events = []
    third = build(image_store, context, events)
    done = [e.text for e in events if e.kind == "done"]
    assert done[0] == "COPY data/ ./data/"
    assert [e.text for e in events if e.kind == "cached"] == ["WORKDIR /app"]
    assert third.manifest_digest != first.manifest_digest
    assert third.layers[:2] == first.layers[:2]


def test_same_inputs_give_the_same_digests(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "ctx")
    first = build(image_store, context, no_cache=True)
    os.utime(context / "data" / "one.txt", (12345, 12345))
    second = build(image_store, context, no_cache=True)
    assert second.manifest_digest == first.manifest_digest
    assert [layer.digest for layer in second.layers] == [layer.digest for layer in first.layers]


def test_failing_run_shows_output_and_exit_code_and_leaves_nothing(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\nRUN echo first-step > /f\nRUN echo about to fail && touch /x && exit 3\n"
    )
    blobs_before = set(os.listdir(image_store.blobs_dir))
    with pytest.raises(BuildError) as info:
        build(image_store, context)
    message = str(info.value)
    assert message.startswith("line 3: RUN failed")
    assert "non-zero code: 3" in message and "about to fail" in message
    new_blobs = set(os.listdir(image_store.blobs_dir)) - blobs_before
    assert len(new_blobs) == 1  # only the first RUN's layer; nothing of the failed step
    assert overlay_mounts_under(image_store.data_dir) == []
    assert list((image_store.data_dir / "build").iterdir()) == []
    listed = subprocess.run(["runc", "--root", str(image_store.data_dir / "runc"), "list",
                             "--format", "json"], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout or "null") in (None, [])


@pytest.mark.parametrize(
    ("dockerfile", "words"),
    [
        ("FROM busybox\nCOPY ../x /x\n", "line 2: COPY: ../x: the path leads outside"),
        ("FROM busybox\nCOPY /etc/passwd /x\n", "line 2: COPY: /etc/passwd: an absolute"),
        ("FROM busybox\nCOPY link/passwd /x\n", "symlink link -> /etc leads outside"),
        ("FROM busybox\nCOPY --from=nope /a /b\n", "no stage named 'nope'"),
        ("ARG BASE\nFROM $BASE\n", "line 2: FROM $BASE: build-arg BASE is not set"),
        ("FROM busybox\nRUNX true\n", "line 2: unknown instruction: RUNX"),
        ("FROM nosuchimage\n", "FROM nosuchimage: image nosuchimage not found"),
        ("FROM busybox\nCOPY data/*.txt /one\n", "2 sources match: the destination /one must"),
    ],
)
def test_bad_input_is_refused_by_name(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path, dockerfile: str, words: str,
) -> None:  # fmt: skip
    context = tmp_path / "ctx"
    context.mkdir()
    os.symlink("/etc", context / "link")
    (context / "data").mkdir()
    for name in ("a.txt", "b.txt"):
        (context / "data" / name).write_text(name)
    (context / "Dockerfile").write_text(dockerfile)
    with pytest.raises((BuildError, ValueError)) as info:
        build(image_store, context)
    assert words in str(info.value)
    assert overlay_mounts_under(image_store.data_dir) == []


def test_missing_target_stage_is_named(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox AS one\nFROM busybox AS two\n")
    with pytest.raises(ValueError, match="stage 'three' not found: this Dockerfile has one, two"):
        build(image_store, context, target="three")


def test_network_none_has_only_loopback(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\nRUN ls /sys/class/net | tr '\\n' ' ' > /nets\n"
    )
    image = build(image_store, context, network="none")
    nets = next(p / "nets" for p in image_store.unpacked_layers(image) if (p / "nets").exists())
    assert nets.read_text().split() == ["lo"]


def test_deleted_and_replaced_directories_become_whiteouts_and_opaque_dirs(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir -p /d/sub && echo a > /d/sub/a && echo b > /d/b && ln /d/b /d/b-link\n"
        "RUN rm -rf /d && mkdir /d && echo new > /d/new && rm /bin/vi\n"
    )
    image = build(image_store, context)
    first = layer_files(image_store, image, 1)
    assert first["d/b-link"].islnk() and first["d/b-link"].linkname == "d/b"
    second = layer_files(image_store, image, 2)
    assert "d/.wh..wh..opq" in second and "d/new" in second and "bin/.wh.vi" in second
    assert "d/sub/a" not in second
    # The image's merged view: /d holds only `new`, /bin/vi is gone.
    top = image_store.unpacked_layers(image)
    from dockyard.runtime.rootfs import mount_rootfs, remove_rootfs

    view = tmp_path / "view"
    view.mkdir()
    rootfs = mount_rootfs(view, top)
    try:
        assert sorted(os.listdir(rootfs / "d")) == ["new"]
        assert not os.path.lexists(rootfs / "bin" / "vi")
    finally:
        remove_rootfs(view)


def test_onbuild_shell_and_predefined_args(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "Dockerfile").write_text("FROM busybox\nONBUILD RUN echo triggered > /onbuild\n")
    build(image_store, parent, tags=["parent:1"])
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(
        "FROM parent:1\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "ARG TARGETARCH\n"
        'RUN echo "$HTTP_PROXY $TARGETARCH" > /args\n'
    )
    image = build(image_store, child, build_args={"HTTP_PROXY": "http://proxy:3128"})
    assert "OnBuild" not in image.run_config and image.run_config["Shell"] == ["/bin/sh", "-ec"]
    layers = image_store.unpacked_layers(image)
    assert any((p / "onbuild").exists() for p in layers)
    args = next(p / "args" for p in layers if (p / "args").exists()).read_text().split()
    assert args[0] == "http://proxy:3128" and args[1] in ("amd64", "arm64")
    assert not any("proxy" in e for e in image.run_config["Env"])  # ARGs stay out of the image


def test_add_of_a_url_needs_a_checksum_and_verifies_it(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    import hashlib
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    (served / "tool.sh").write_text("echo tool\n")
    digest = "sha256:" + hashlib.sha256(b"echo tool\n").hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/tool.sh"
    context = tmp_path / "ctx"
    context.mkdir()
    try:
        (context / "Dockerfile").write_text(f"FROM busybox\nADD {url} /opt/\n")
        with pytest.raises((BuildError, ValueError), match="line 2: ADD: .* needs --checksum"):
            build(image_store, context)
        (context / "Dockerfile").write_text(
            f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /opt/\n")
        with pytest.raises(BuildError, match="--checksum says"):
            build(image_store, context)
        (context / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={digest} {url} /opt/\n")
        image = build(image_store, context)
        files = layer_files(image_store, image, 1)
        assert files["opt/tool.sh"].mode == 0o600
    finally:
        server.shutdown()
        server.server_close()
