"""The node agent: the node's pods become real containers, status back to the api server."""
