"""vc5.config: vc5-compatible YAML configuration -> validated, immutable model.

    from vc5.config import load, load_text, ConfigError
    cfg = load("/etc/vc5/vc5.yaml")      # Config, or ConfigError with every problem
    to_vc5_json(cfg)                       # vc5's expanded JSON (what its config.pl produces)
    masked(cfg)                            # the same with secrets replaced, for /config.json

The grammar is vc5's (cmd/config.pl); see docs/configuration.md.
"""

from .compiler import load, load_text
from .errors import ConfigError, Problem
from .frozen import FrozenDict
from .model import Backend, Bgp, Check, Config, Logging, Peer, Service
from .vc5json import SECRET, masked, to_vc5_json

__all__ = ["load", "load_text", "ConfigError", "Problem", "Config", "Service", "Backend", "Check", "Bgp",
           "Peer", "Logging", "FrozenDict", "to_vc5_json", "masked", "SECRET"]
