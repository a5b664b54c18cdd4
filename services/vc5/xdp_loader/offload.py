"""VLAN offload off while vc5's program is attached (docs/data-plane.md, "VLAN offload"):
a NIC that strips 802.1Q tags on receive (rxvlan) hands XDP frames without them, so the
program cannot read or rewrite the VID; txvlan would move the tag of an XDP_TX frame back
into metadata the XDP path does not fill. vc5 asks operators to run
`ethtool -K IFACE rxvlan off txvlan off`; the loader does it on attach and restores on detach.

    changed = disable(ifname)     # features switched off now ([] if already off or fixed)
    restore(ifname)               # switch back on exactly what a disable() recorded

What was switched off is recorded in STATE_PATH (JSON: {"<netns inode>:<ifname>": [feature,
...]}: one file serves every network namespace), outside
the unit's RuntimeDirectory, so that a restarted loader (which finds the features already off)
and `--stop-post` / `--detach` (another process) restore exactly what the first attach
changed, and nothing an operator had switched off himself.
"""

from __future__ import annotations

import json
import logging
import os

from vc5.common import files

log = logging.getLogger("vc5.xdp_loader")

FEATURES = ("rx-vlan-hw-parse", "tx-vlan-hw-insert")     # ethtool's rxvlan, txvlan
STATE_PATH = os.environ.get("VC5_VLAN_OFFLOAD_STATE", "/run/vc5/vlan-offload.json")


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: str, data: dict) -> None:
    files.replace_file(path, json.dumps(data, sort_keys=True), mode=0o644, make_directory=0o777)


def _key(ifname: str) -> str:
    try:
        return f"{os.stat('/proc/self/ns/net').st_ino}:{ifname}"
    except OSError:
        return ifname


def _set(ifname: str, names, enable: bool) -> list:
    """Set `names` to `enable` where they are changeable and differ; the names changed."""
    from pyroute2.ethtool import Ethtool
    e = Ethtool()
    try:
        features = e.get_features(ifname)
        changed = []
        for name in names:
            f = features.features.get(name)
            if f is None or not f.available or bool(f.enable) == enable:
                continue
            f.enable = enable
            changed.append(name)
        if changed:
            e.set_features(ifname, features)
        return changed
    finally:
        e.close()


def disable(ifname: str, path: str | None = None) -> list:
    """rxvlan and txvlan off on `ifname`; returns what this call switched off. Never raises:
    an interface without these features (or ethtool refused) is logged and left as it is."""
    path = path or STATE_PATH
    try:
        changed = _set(ifname, FEATURES, False)
    except Exception as e:
        log.warning("%s: could not switch VLAN offload off (%s); tagged frames may reach XDP without "
                    "their tag: `ethtool -K %s rxvlan off txvlan off`", ifname, e, ifname)
        return []
    if changed:
        data, key = _read(path), _key(ifname)
        data[key] = sorted(set(data.get(key, [])) | set(changed))
        try:
            _write(path, data)
        except OSError as e:
            log.warning("%s: cannot record the VLAN offload changed in %s (%s): detach will not "
                        "restore it", ifname, path, e)
        log.info("%s: switched off %s for XDP (restored on detach)", ifname, ", ".join(changed))
    return changed


def restore(ifname: str, path: str | None = None) -> list:
    """Switch back on what disable() recorded for `ifname`; returns the features restored."""
    path = path or STATE_PATH
    data = _read(path)
    names = data.pop(_key(ifname), None)
    if not names:
        return []
    try:
        done = _set(ifname, names, True)
    except Exception as e:
        log.warning("%s: could not restore %s (%s)", ifname, ", ".join(names), e)
        done = []
    try:
        if data:
            _write(path, data)
        else:
            os.unlink(path)
    except OSError:
        pass
    if done:
        log.info("%s: restored %s", ifname, ", ".join(done))
    return done
