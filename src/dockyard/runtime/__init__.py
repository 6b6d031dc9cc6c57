"""Container runtime: runc, overlayfs root filesystems, CNI networking, cgroups, logs."""
