"""HTTP check URLs, Host headers and expect matching as vc5 builds them (cue:mon/mon.go httpProbeVIP)."""

import pytest

from vc5 import config
from vc5.healthd import urls


def Check(type="http", port=80, **kw):
    """The real model's Check (vc5.config), with test defaults: the tests cannot drift from it."""
    return config.Check(type, port, **kw)


@pytest.mark.parametrize("check,vip,url", [
    (Check(), "192.0.2.1", "http://192.0.2.1/"),
    (Check(path="/alive"), "192.0.2.1", "http://192.0.2.1/alive"),
    (Check(path="alive"), "192.0.2.1", "http://192.0.2.1/alive"),
    (Check(path="//alive"), "192.0.2.1", "http://192.0.2.1/alive"),
    (Check(port=8080, path="/x"), "192.0.2.1", "http://192.0.2.1:8080/x"),
    (Check(type="https", port=443), "192.0.2.1", "https://192.0.2.1/"),
    (Check(type="https", port=80), "192.0.2.1", "https://192.0.2.1:80/"),
    (Check(type="http", port=443), "192.0.2.1", "http://192.0.2.1:443/"),
    (Check(), "2001:db8::1", "http://[2001:db8::1]/"),
    (Check(port=8080), "2001:db8::1", "http://[2001:db8::1]:8080/"),
    (Check(host="www.example.com", path="/alive"), "192.0.2.1", "http://www.example.com/alive"),
    (Check(host="2001:db8::9"), "192.0.2.1", "http://[2001:db8::9]/"),
])
def test_url(check, vip, url):
    assert urls.url(check, vip) == url


def test_host_header():
    assert urls.host_header(Check(), "192.0.2.1") == "192.0.2.1"
    assert urls.host_header(Check(port=8080), "2001:db8::1") == "[2001:db8::1]:8080"
    assert urls.host_header(Check(host="www.example.com", type="https", port=443), "192.0.2.1") == \
        "www.example.com"


def test_expect_default_200_and_zero_is_any():
    assert urls.expected(Check(), 200) and not urls.expected(Check(), 204)
    assert urls.expected(Check(expect=(301, 302)), 302) and not urls.expected(Check(expect=(301,)), 200)
    assert urls.expected(Check(expect=(0,)), 503)


def test_method():
    assert urls.method_of(Check()) == "GET"
    assert urls.method_of(Check(method="head")) == "HEAD"


def test_literal():
    assert urls.is_literal("[2001:db8::1]") and urls.is_literal("192.0.2.1")
    assert not urls.is_literal("www.example.com")
