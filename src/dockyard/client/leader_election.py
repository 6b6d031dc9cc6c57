"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package.

``LeaderElector(api, LeaderElectionConfig(lease_name=..., identity=...), on_started_leading,
on_stopped_leading)``; ``await elector.run()`` campaigns until it holds the Lease, calls
``on_started_leading`` (in its own task, so renewing goes on while it runs), renews every
``retry_period``, and on lost leadership awaits ``on_stopped_leading`` and campaigns again. When
``run()`` is cancelled it stops leading, then (``release_on_cancel``, client-go's
ReleaseOnCancel) clears ``spec.holderIdentity`` so the next candidate takes over at once.

Invariants:
- Every write is compare-and-swap on the Lease's ``metadata.resourceVersion``: of two candidates
  that both see an expired Lease, one update wins and the other gets 409 Conflict and stays a
  candidate.
- Expiry is judged on our own monotonic clock: a Lease held by another is expired only when
  its record (``spec``) has not changed for ``leaseDurationSeconds`` since *we* last saw it
  change, never by the ``renewTime`` another machine wrote (clock skew between machines cannot
  cut a leader's term short). A new candidate therefore waits a full lease duration before it
  takes over a Lease whose holder died, as client-go does.
- A leader that cannot renew within ``renew_deadline`` of its last successful renewal (measured
  from when that request was sent) stops leading. Since ``renew_deadline < lease_duration``, it
  has stopped (or has ``lease_duration - renew_deadline`` seconds to finish stopping) before
  any other candidate may take over.
- On a clean stop the callbacks run before the release, so the next leader never overlaps us
  (client-go releases first, which is safe there only because the process exits).
- ``acquireTime`` and ``leaseTransitions`` change only when the holder changes; a renewal
  writes ``renewTime`` alone. An empty ``holderIdentity`` means nobody holds the Lease.

Written here rather than taken from the official ``kubernetes`` package: its leaderelection
module is thread-based and synchronous, and our loops share one asyncio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.client.api import ApiClient
from dockyard.client.errors import AlreadyExistsError, ConflictError, NotFoundError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LeaderCallback = Callable[[], Awaitable[None]]
# Kubernetes' defaults for kube-controller-manager and kube-scheduler (--leader-elect-*).
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2  # client-go waits retry_period * [1, 1.2) between campaign attempts


def check_durations(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Raise ValueError unless lease duration > renew deadline > 1.2 * retry period > 0."""
    if retry_period <= 0:
        raise ValueError(f"leader election retry period must be greater than 0 (got "
                         f"{retry_period})")
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError(f"leader election renew deadline ({renew_deadline}s) must be greater "
                         f"than {JITTER_FACTOR} x the retry period ({retry_period}s)")
    if lease_duration <= renew_deadline:
        raise ValueError(f"leader election lease duration ({lease_duration}s) must be greater "
                         f"than the renew deadline ({renew_deadline}s)")


def default_identity() -> str:
    """Return a fresh holder identity, hostname_uuid, as kube-controller-manager makes it."""
    return f"{socket.gethostname().lower()}_{uuid.uuid4()}"


def micro_time() -> str:
    """Return the current wall-clock time as Kubernetes' MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease to hold, as whom, and the three durations (seconds)."""

    lease_name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.lease_name or not self.namespace:
            raise ValueError("leader election needs a Lease name and namespace")
        if not self.identity:
            raise ValueError("leader election needs a non-empty holder identity")
        check_durations(self.lease_duration, self.renew_deadline, self.retry_period)

    @property
    def lease_duration_seconds(self) -> int:
        """Return the lease duration as the whole seconds the Lease's spec holds."""
        return max(1, math.ceil(self.lease_duration))


class LeaderElector:
    """Campaigns for one Lease and runs callbacks while holding it."""

    def __init__(self, api: ApiClient, config: LeaderElectionConfig,
                 on_started_leading: LeaderCallback, on_stopped_leading: LeaderCallback,
                 *, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.config = config
        self.leases = api.resource("coordination.k8s.io/v1", "leases", config.namespace)
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._observed: Obj | None = None  # the Lease's spec as we last saw it
        self._observed_time = 0.0  # our clock when that spec last changed
        self._leading = False
        # Set after each campaign attempt (and is_leader already says how it went).
        self.attempted = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        """Tell whether we hold the Lease and have not given it up."""
        return self._leading

    @property
    def observed_holder(self) -> str:
        """Return the holderIdentity we last saw ("" when nobody holds the Lease)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    async def run(self) -> None:
        """Campaign, lead, and campaign again after a lost term, until cancelled."""
        while True:
            try:
                await self._campaign()
            except asyncio.CancelledError:
                # Cancelled just after a successful write: the Lease names us; give it back.
                if self.config.release_on_cancel and self.observed_holder == self.config.identity:
                    await self._attempt_release()
                raise
            await self._lead()

    async def try_acquire_or_renew(self) -> bool:
        """Take the Lease if it is free, expired or ours; return whether we now hold it."""
        name = self.config.lease_name
        try:
            lease = await self.leases.get(name)
        except NotFoundError:
            return await self._create()
        self._observe(lease)
        spec: Obj = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.config.identity and not self._expired(spec):
            return False
        now = micro_time()
        record = {"holderIdentity": self.config.identity,
                  "leaseDurationSeconds": self.config.lease_duration_seconds,
                  "renewTime": now}  # fmt: skip
        if holder == self.config.identity:
            record["acquireTime"] = spec.get("acquireTime") or now
            record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0)
        else:
            record["acquireTime"] = now
            record["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return await self._write(lease, record)

    async def release(self) -> bool:
        """Clear holderIdentity if we hold the Lease (the next candidate needs no wait)."""
        try:
            lease = await self.leases.get(self.config.lease_name)
        except NotFoundError:
            return True
        spec: Obj = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.config.identity:
            return True  # someone else took it already: nothing of ours to give up
        now = micro_time()
        # As client-go: one second, so a candidate that missed the release waits little.
        record = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                  "renewTime": now, "leaseTransitions": int(spec.get("leaseTransitions") or 0)}
        return await self._write(lease, record)

    # --- the campaign and the term ------------------------------------------------------

    async def _campaign(self) -> None:
        """Return once we hold the Lease, retrying every retry_period (with jitter)."""
        cfg = self.config
        while True:
            acquired = await self._attempt(cfg.renew_deadline)
            self._leading = acquired
            self.attempted.set()
            if acquired:
                log.info("%s: now holds lease %s/%s", cfg.identity, cfg.namespace, cfg.lease_name)
                return
            await asyncio.sleep(cfg.retry_period * random.uniform(1.0, JITTER_FACTOR))

    async def _lead(self) -> None:
        """Run on_started_leading and renew until leadership is lost or we are cancelled."""
        work = asyncio.create_task(self._started(), name="leader-started")
        try:
            await self._renew_until_lost()
        except asyncio.CancelledError:
            await self._step_down(work, release=self.config.release_on_cancel)
            raise
        await self._step_down(work, release=False)

    async def _renew_until_lost(self) -> None:
        """Renew every retry_period; return when renew_deadline passes without a renewal."""
        cfg = self.config
        renewed = self._clock()
        while True:
            remaining = renewed + cfg.renew_deadline - self._clock()
            if remaining > 0:
                await asyncio.sleep(min(cfg.retry_period, remaining))
                remaining = renewed + cfg.renew_deadline - self._clock()
            if remaining <= 0:
                log.warning("%s: could not renew lease %s/%s within %.1fs: stopped leading",
                            cfg.identity, cfg.namespace, cfg.lease_name, cfg.renew_deadline)
                return
            sent = self._clock()
            if await self._attempt(remaining):
                renewed = sent
            elif self.observed_holder not in ("", cfg.identity):
                log.warning("%s: lease %s/%s now held by %s: stopped leading", cfg.identity,
                            cfg.namespace, cfg.lease_name, self.observed_holder)
                return

    async def _started(self) -> None:
        try:
            await self._on_started()
        except asyncio.CancelledError:
            raise
        except Exception:  # the term goes on (the Lease is still ours); the error is logged
            log.exception("%s: on_started_leading failed", self.config.identity)

    async def _step_down(self, work: asyncio.Task[None], *, release: bool) -> None:
        """Stop the started work, run on_stopped_leading, then release if asked."""
        self._leading = False
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        try:
            await self._on_stopped()
        except Exception:  # stepping down must go on to the release regardless
            log.exception("%s: on_stopped_leading failed", self.config.identity)
        if release:
            released = await self._attempt_release()
            log.info("%s: %s lease %s/%s", self.config.identity,
                     "released" if released else "could not release", self.config.namespace,
                     self.config.lease_name)

    async def _attempt(self, timeout: float) -> bool:
        """Try once within timeout; any failure to reach a verdict counts as not holding."""
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout)
        except TimeoutError:
            log.warning("%s: lease %s/%s: no answer within %.1fs", self.config.identity,
                        self.config.namespace, self.config.lease_name, timeout)
        except Exception as e:  # unreachable server, 5xx...: the next attempt may succeed
            log.warning("%s: lease %s/%s: %s", self.config.identity, self.config.namespace,
                        self.config.lease_name, e)
        return False

    async def _attempt_release(self) -> bool:
        """Release within renew_deadline; False if that failed (the Lease then expires)."""
        with contextlib.suppress(Exception):
            return await asyncio.wait_for(self.release(), self.config.renew_deadline)
        return False

    # --- reading and writing the Lease ----------------------------------------------------

    async def _create(self) -> bool:
        now = micro_time()
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.config.lease_name,
                              "namespace": self.config.namespace},
                 "spec": {"holderIdentity": self.config.identity,
                          "leaseDurationSeconds": self.config.lease_duration_seconds,
                          "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
        try:
            created = await self.leases.create(lease)
        except (AlreadyExistsError, ConflictError):
            return False  # another candidate created it first: we see it on the next try
        self._observe(created)
        return True

    async def _write(self, lease: Obj, record: Obj) -> bool:
        """Update the Lease's spec, compare-and-swap on the resourceVersion we read."""
        body = copy.deepcopy(lease)
        body["spec"] = {**(lease.get("spec") or {}), **record}
        try:
            updated = await self.leases.update(body)
        except ConflictError:
            return False  # someone wrote since we read: judge again on the next try
        self._observe(updated)
        return True

    def _observe(self, lease: Obj) -> None:
        """Remember the Lease's spec and, when it changed, when we saw it change."""
        spec = dict(lease.get("spec") or {})
        if spec != self._observed:
            self._observed = spec
            self._observed_time = self._clock()

    def _expired(self, spec: Obj) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.config.lease_duration_seconds
        return self._clock() >= self._observed_time + float(duration)
