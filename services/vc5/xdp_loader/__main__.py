"""`vc5-xdp-loader` / `python3 -m vc5.xdp_loader`: see daemon.py."""

import sys

from .daemon import main as _main


def main(argv=None) -> int:
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
