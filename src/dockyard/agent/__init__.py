"""The node agent (dockyard's kubelet): the node's pods become real containers.

agent.py wires it (Agent, run_agent); node.py registers the Node and renews its Lease;
worker.py drives one pod; podspec.py holds Kubernetes' rules as pure functions; volumes.py,
probes.py, stats.py and server.py (the HTTPS endpoint the api server calls) do the rest.
"""
