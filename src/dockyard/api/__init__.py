"""The api server: routing, handlers, patching, discovery, tables, authn/authz, watch fan-out."""
