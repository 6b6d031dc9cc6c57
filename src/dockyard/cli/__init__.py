"""The dockyard command: docker-style and kubectl-style verbs."""
