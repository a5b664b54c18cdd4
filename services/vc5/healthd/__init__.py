"""vc5-healthd: the configuration owner, health checks, backend/service/VIP state (docs/health-checks.md).

The skeleton every vc5 service shares (vc5.common.lifecycle): __main__
(argparse) -> daemon (life cycle, one vc5.common.bus.Publisher) -> pure
modules. Pure parts (no I/O): hysteresis, state, urls. I/O parts: checks/,
scheduler, probe_path, persist; api.py holds the D-Bus declarations only.
"""
