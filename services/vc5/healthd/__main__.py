"""`vc5-healthd` and `python3 -m vc5.healthd`."""

import sys

from .daemon import main as _main


def main() -> int:
    return _main()


if __name__ == "__main__":
    sys.exit(main())
