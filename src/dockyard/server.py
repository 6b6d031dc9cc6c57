"""Wiring for `dockyard server`: store, api server, and the in-process loops."""
