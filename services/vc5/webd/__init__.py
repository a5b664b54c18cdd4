"""vc5-webd: the console, vc5-compatible JSON and Prometheus /metrics, read from the bus."""
