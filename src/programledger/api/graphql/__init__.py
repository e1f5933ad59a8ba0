"""The GraphQL schema (types, generated inputs and mutations, subscriptions) and its
transport over HTTP and WebSocket; ``schema.build_schema`` puts it together."""
