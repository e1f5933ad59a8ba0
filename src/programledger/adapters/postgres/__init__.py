"""PostgreSQL: the event store, its migrations and connection pools."""
