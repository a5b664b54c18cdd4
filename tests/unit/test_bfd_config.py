"""`bfd:` in the bgp section (an extension over vc5): inheritance and located errors."""

import pytest

from vc5.config import ConfigError, load_text
from vc5.config.model import DEFAULT_BFD_INTERVAL_MS, DEFAULT_BFD_MULTIPLIER, BfdParams


def bgp(top="", group=""):
    return ("address: 10.0.0.2\n"
            "bgp:\n"
            "  as_number: 65001\n"
            f"{top}"
            "  peers: [10.0.0.1]\n"
            "  groups:\n"
            "    - name: g\n"
            "      peers: [10.0.0.3]\n"
            f"{group}")


def peers(text):
    return {str(p.address): p.bfd for p in load_text(text, "t.yaml").bgp.peers}


def test_off_by_default():
    assert peers(bgp()) == {"10.0.0.1": None, "10.0.0.3": None}


def test_true_gives_the_defaults_and_groups_inherit():
    want = BfdParams(DEFAULT_BFD_INTERVAL_MS, DEFAULT_BFD_MULTIPLIER)
    assert peers(bgp("  bfd: true\n")) == {"10.0.0.1": want, "10.0.0.3": want}


def test_a_group_overrides_and_can_turn_it_off():
    assert peers(bgp("  bfd: {interval_ms: 300, multiplier: 4}\n", "      bfd: false\n")) == {
        "10.0.0.1": BfdParams(300, 4), "10.0.0.3": None}
    assert peers(bgp(group="      bfd: {multiplier: 5}\n")) == {
        "10.0.0.1": None, "10.0.0.3": BfdParams(DEFAULT_BFD_INTERVAL_MS, 5)}


@pytest.mark.parametrize("top, where, text", [
    ("  bfd: fast\n", "t.yaml:4:8: bgp.bfd", "must be true, false or a mapping"),
    ("  bfd: {interval_ms: 10}\n", "t.yaml:4:22: bgp.bfd.interval_ms", "from 50 to 60000"),
    ("  bfd: {multiplier: 0}\n", "t.yaml:4:21: bgp.bfd.multiplier", "from 1 to 255"),
    ("  bfd: {intervall_ms: 100}\n", "t.yaml:4:9: bgp.bfd.intervall_ms", "did you mean 'interval_ms'"),
    ("  bfd: [100]\n", "t.yaml:4:8: bgp.bfd", ""),
])
def test_bad_values_are_located(top, where, text):
    with pytest.raises(ConfigError) as e:
        load_text(bgp(top), "t.yaml")
    assert where in str(e.value) and text in str(e.value)
