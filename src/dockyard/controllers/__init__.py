"""Reconcile loops, one module per controller."""
