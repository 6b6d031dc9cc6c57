"""Typed keys of what the api server's aiohttp application holds (aiohttp's web.AppKey).

One place names them, so every handler gets the right type back from `request.app[KEY]`
without a cast, and aiohttp does not warn about plain string keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from dockyard.api.app import ApiConfig
    from dockyard.api.handlers import ResourceHandlers
    from dockyard.api.metrics import ApiMetrics
    from dockyard.api.namespaces import NamespaceCleaner
    from dockyard.api.node_proxy import AgentDialer
    from dockyard.api.storage import ResourceStorage
    from dockyard.api.tokens import TokenFile

CONFIG: web.AppKey[ApiConfig] = web.AppKey("config")
STORAGE: web.AppKey[ResourceStorage] = web.AppKey("storage")
METRICS: web.AppKey[ApiMetrics] = web.AppKey("metrics")
TOKENS: web.AppKey[TokenFile] = web.AppKey("tokens")
AVAILABLE_SUBRESOURCES: web.AppKey[set[str]] = web.AppKey("available_subresources")
RESOURCES: web.AppKey[ResourceHandlers] = web.AppKey("resources")
NAMESPACE_CLEANER: web.AppKey[NamespaceCleaner] = web.AppKey("namespace_cleaner")
AGENT_DIALER: web.AppKey[AgentDialer] = web.AppKey("agent_dialer")
