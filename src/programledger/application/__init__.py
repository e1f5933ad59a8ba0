"""The application layer: command handlers, queries, and the ports they need."""
