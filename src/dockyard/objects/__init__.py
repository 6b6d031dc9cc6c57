"""One module per kind: defaults, validation and helpers (names, labels, selectors, quantities)."""
