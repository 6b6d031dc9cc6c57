"""Revisioned key-value stores (SQLite, etcd) behind one protocol, with watch from a revision."""
