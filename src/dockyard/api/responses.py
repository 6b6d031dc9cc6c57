"""Writing responses: JSON bodies encoded with orjson (the api server's hot path)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(obj: Any, code: int = 200) -> web.Response:
    """Return a JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(obj), status=code, content_type="application/json")
