"""Adapters: the concrete PostgreSQL, NATS and embedded-server implementations of the ports."""
