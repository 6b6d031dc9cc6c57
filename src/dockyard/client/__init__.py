"""Async API client and informers (list + watch + local cache) used by every loop."""
