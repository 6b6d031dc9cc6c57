"""The client verbs (kubectl-style and docker-style) of the root `dockyard` group.

One table lists them so main.py needs a single line, and the order here is the order
`dockyard --help` shows them in. Each is imported only when it runs (see cli/lazy.py).
"""

from __future__ import annotations

from dockyard.cli.lazy import LazyVerb

# Flags after the image (or container) belong to the command run inside, as in Docker.
_INSIDE = {"allow_interspersed_args": False}

_KUBE = (("apply", "apply:apply"), ("get", "get:get"), ("describe", "get:describe"),
         ("delete", "apply:delete"), ("scale", "kube_commands:scale"), ("diff", "apply:diff"),
         ("events", "kube_commands:events"), ("cordon", "kube_commands:cordon"),
         ("uncordon", "kube_commands:uncordon"), ("drain", "kube_commands:drain"),
         ("autoscale", "kube_commands:autoscale"), ("version", "kube_commands:version"),
         ("status", "kube_commands:status"), ("port-forward", "kube_commands:port_forward"))
_DOCKER = ("ps", "logs", "attach", "stop", "start", "restart", "rm", "stats")
_GROUPS = (("rollout", "rollout:rollout_app"), ("set", "kube_commands:set_app"),
           ("top", "kube_commands:top_app"))


def _cli(target: str) -> str:
    return f"dockyard.cli.{target}"


CLIENT_VERBS: tuple[LazyVerb, ...] = (
    *(LazyVerb(name, _cli(target), "kube") for name, target in _KUBE),
    LazyVerb("run", _cli("docker_commands:run_command"), "docker", _INSIDE),
    LazyVerb("exec", _cli("docker_commands:exec_command"), "docker", _INSIDE),
    *(LazyVerb(name, _cli(f"docker_commands:{name}"), "docker") for name in _DOCKER),
    *(LazyVerb(name, _cli(target)) for name, target in _GROUPS),
)
