"""dockyard: container orchestration with Docker's ease and Kubernetes' API."""

__version__ = "0.1.0"
