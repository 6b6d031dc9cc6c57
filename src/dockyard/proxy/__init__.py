"""Service proxy: services to ready endpoints."""
