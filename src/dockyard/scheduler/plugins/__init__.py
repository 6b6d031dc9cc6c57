"""Scheduler plugins, each small and named for its one rule."""
