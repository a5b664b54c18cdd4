"""vc5-healthd: the configuration owner, health checks, backend/service/VIP state.

Pure parts (no I/O): hysteresis, state, urls. I/O parts: checks/, scheduler,
probe_path, api (D-Bus), daemon.
"""
