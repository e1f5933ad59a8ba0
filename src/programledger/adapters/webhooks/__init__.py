"""Webhook delivery: signed requests (``sender``) and the worker that sends them (``worker``)."""
