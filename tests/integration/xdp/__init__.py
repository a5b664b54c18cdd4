"""Helpers for the XDP loader's integration tests (topology, backend servers, client, a stand-in healthd)."""
