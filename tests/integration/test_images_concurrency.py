"""Two processes on one store: no lost tags, one shared layer, no half layer after a kill."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures
from tests.unit.test_images_layers import directory, file, tar_bytes

image_store = image_fixtures.image_store

pytestmark = pytest.mark.integration


def many_files_image(store: ImageStore, count: int) -> Image:
    entries = [directory("d")] + [file(f"d/f{i}", os.urandom(64)) for i in range(count)]
    layer = store.put_layer(gzip.compress(tar_bytes(*entries), mtime=0))
    return store.create_image("many", {"os": "linux"}, [layer])


def spawn(data_dir: Path, code: str) -> subprocess.Popen[str]:
    script = "from pathlib import Path\nfrom dockyard.images.store import ImageStore\n"
    script += f"store = ImageStore(Path({str(data_dir)!r}))\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def test_concurrent_tags_from_two_processes_are_all_kept(image_store: ImageStore) -> None:
    many_files_image(image_store, 1)
    code = "for i in range(25):\n    store.tag('many', f'NAME-{i}')\n"
    procs = [spawn(image_store.data_dir, code.replace("NAME", n)) for n in ("a", "b")]
    for proc in procs:
        finish(proc)
    assert len(image_store.list_images()) == 51


def test_concurrent_unpacks_share_one_complete_layer(image_store: ImageStore) -> None:
    image = many_files_image(image_store, 3000)
    code = "print(store.unpacked_layers(store.resolve('many'))[0])\n"
    procs = [spawn(image_store.data_dir, code) for _ in range(3)]
    paths = {finish(proc).strip() for proc in procs}
    assert paths == {str(image_store.layer_path(image.layers[0].diff_id))}
    assert len(list(Path(paths.pop()).joinpath("d").iterdir())) == 3000
    assert list(image_store.tmp_dir.iterdir()) == []


def test_killed_unpack_leaves_no_half_layer(image_store: ImageStore) -> None:
    image = many_files_image(image_store, 8000)
    proc = spawn(image_store.data_dir, "store.unpacked_layers(store.resolve('many'))\n")
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("layer.") for p in image_store.tmp_dir.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, "unpack never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    final = image_store.layer_path(image.layers[0].diff_id)
    if final.exists():  # the unpack won the race with our kill: it must then be whole
        assert len(list(final.joinpath("d").iterdir())) == 8000
    else:
        [path] = image_store.unpacked_layers(image)
        assert len(list(path.joinpath("d").iterdir())) == 8000
    image_store.garbage_collect(grace_seconds=0)
    assert list(image_store.tmp_dir.iterdir()) == []
