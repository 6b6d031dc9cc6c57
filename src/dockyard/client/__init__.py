"""Async API client and informers (list + watch + local cache) used by every loop.

The loops (scheduler, controllers, agent, proxy, CLI) reach the api server only through this
package: ``ApiClient``/``ResourceClient`` for the REST verbs and watches, ``Informer`` for cached
list+watch, ``WorkQueue``/``run_workers`` for reconcile loops, ``EventRecorder`` for Events.
"""

from dockyard.client.api import ApiClient, ObjectList, ResourceClient, Watch, WatchEvent
from dockyard.client.config import ClientConfig, KubeconfigError, load_kubeconfig
from dockyard.client.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    ServerUnreachableError,
    UnauthorizedError,
)
from dockyard.client.events import EventRecorder
from dockyard.client.informer import Informer, InformerFactory, object_key, split_key
from dockyard.client.retry import retry_on_conflict
from dockyard.client.wait import wait_for
from dockyard.client.workqueue import RequeueAfter, ShutDown, WorkQueue, run_workers

__all__ = [
    "AlreadyExistsError",
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "ConflictError",
    "EventRecorder",
    "ForbiddenError",
    "GoneError",
    "Informer",
    "InformerFactory",
    "InvalidError",
    "KubeconfigError",
    "NotFoundError",
    "ObjectList",
    "RequeueAfter",
    "ResourceClient",
    "ServerUnreachableError",
    "ShutDown",
    "UnauthorizedError",
    "Watch",
    "WatchEvent",
    "WorkQueue",
    "load_kubeconfig",
    "object_key",
    "retry_on_conflict",
    "run_workers",
    "split_key",
    "wait_for",
]
