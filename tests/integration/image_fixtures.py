"""Reusable image fixtures: an isolated ImageStore and a bootstrapped busybox image.

Use from any test module (runtime, agent, builder):

    from tests.integration import image_fixtures

    image_store = image_fixtures.image_store
    busybox_image = image_fixtures.busybox_image

`image_store` is an ImageStore under the test's tmp_path (removed with it); `busybox_image`
is `busybox:latest` made from the host's busybox-static in that store. Unpacked layers:
`image_store.unpacked_layers(busybox_image)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import Image, ImageStore


@pytest.fixture
def image_store(tmp_path: Path) -> ImageStore:
    """Return an empty image store in a temporary data dir."""
    return ImageStore(tmp_path / "data")


@pytest.fixture
def busybox_image(image_store: ImageStore) -> Image:
    """Return busybox:latest bootstrapped from the host's busybox-static."""
    return bootstrap_busybox(image_store)
