"""Shared test helpers: network namespaces, a private D-Bus, process control."""
