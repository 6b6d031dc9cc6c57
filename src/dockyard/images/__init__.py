"""Content-addressed OCI image store, Dockerfile builder, registry client and server."""
