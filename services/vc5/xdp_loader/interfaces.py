"""The configured interfaces and vc5's program on each: attach, watch, detach.

Policy in docs/data-plane.md, "Attachment": a vc5 program already there is
replaced in place (attach.py); an interface that loses its hook is attached
again at the next rescan; another program that replaced ours is reported,
not fought (Manager.Reattach takes the interface back); vc5's program left on
an interface that is no longer configured is detached.

`status` holds one wire.InterfaceStatus per configured interface, in the
configuration's order: the published Interfaces.
"""

from __future__ import annotations

import dataclasses
import logging

from vc5.common import log as vlog
from vc5.common import messages, wire

from . import attach, offload

log = logging.getLogger("vc5.xdp_loader")

MISSING = "no such interface (waiting for it to appear)"


class Interfaces:
    def __init__(self, names, reader, xdp_fd: int, mode: str):
        self.names = tuple(names)
        self.reader = reader            # netinfo.NetReader
        self.xdp_fd = xdp_fd
        self.mode = mode
        self._status = {name: wire.InterfaceStatus(name) for name in self.names}

    @property
    def status(self) -> tuple:
        return tuple(self._status[n] for n in self.names)

    def ifindexes(self) -> tuple:
        """Where backends may be redirected to (planner: several untagged NICs)."""
        return tuple(st.ifindex for st in self._status.values() if st.ifindex)

    def _set(self, name: str, **changes) -> wire.InterfaceStatus:
        st = self._status[name] = dataclasses.replace(self._status.get(name) or wire.InterfaceStatus(name),
                                                      **changes)
        return st

    def attach(self, name: str, view, force: bool = False) -> wire.InterfaceStatus:
        """Attach (replace in place) on `name`; never raises for a missing NIC."""
        itf = view.interfaces.get(name)
        if itf is None:
            itf = next((i for i in self.reader.interfaces() if i.name == name), None)
        if itf is None:
            return self._set(name, ifindex=0, mode="", prog_id=0, attached=False, note=MISSING)
        before = self._set(name, ifindex=itf.ifindex)
        try:
            r = attach.attach(itf.ifindex, name, self.xdp_fd, self.mode)
        except attach.AttachError as e:
            if before.note != str(e) or force:      # once per distinct error, not every rescan
                vlog.event(log, logging.ERROR, f"XDP not attached to {name}: {e}", interface=name)
            return self._set(name, attached=False, note=str(e))
        offload.disable(name)       # XDP must see the 802.1Q tags (offload.py)
        how = ("replaced program %d in place" % r.previous_prog_id if r.replaced_in_place and
               r.previous_prog_id != r.prog_id else "attached")
        if r.previous_prog_id != r.prog_id or force:
            vlog.event(log, logging.INFO, f"XDP program {r.prog_id} {how} on {name} ({r.mode} mode)"
                       + (f"; {r.note}" if r.note else ""), message_id=messages.XDP_ATTACHED,
                       interface=name, mode=r.mode, prog_id=r.prog_id)
        return self._set(name, mode=r.mode, prog_id=r.prog_id, attached=True, note=r.note)

    def attach_all(self, view) -> None:
        for name in self.names:
            self.attach(name, view)
        self.detach_unconfigured()

    def detach_unconfigured(self) -> None:
        """A previous loader's program left on an interface that is no longer configured (the
        configuration changed across a restart) keeps balancing with our maps: detach it."""
        from . import program

        for itf in self.reader.interfaces():
            if itf.name in self.names:
                continue
            try:
                st = attach.query(itf.ifindex, self.reader.ipr)
                if not st.attached or attach.prog_name_by_id(st.prog_id) != program.XDP_MAIN:
                    continue
                gone = attach.detach(itf.ifindex, itf.name, expected_prog_id=st.prog_id, ipr=self.reader.ipr)
            except attach.AttachError as e:
                log.warning("%s", e)
                continue
            if gone:
                vlog.event(log, logging.INFO, f"XDP program {gone} detached from {itf.name} (not in the "
                           "configured interfaces)", message_id=messages.XDP_DETACHED, interface=itf.name)

    def check(self, view, ours: int) -> bool:
        """Re-attach where an interface appeared or lost its hook; report a foreign program.
        True if any status changed."""
        before = self.status
        for name in self.names:
            self._check_one(name, view, ours)
        return self.status != before

    def _check_one(self, name: str, view, ours: int) -> None:
        st = self._status[name]
        itf = view.interfaces.get(name)
        if itf is None:
            self._set(name, ifindex=0, mode="", prog_id=0, attached=False, note=MISSING)
            return
        try:
            cur = attach.query(itf.ifindex, self.reader.ipr)
        except attach.AttachError as e:
            self._set(name, note=str(e))
            return
        if not cur.attached:
            if st.attached:
                vlog.event(log, logging.WARNING, f"{name} lost its XDP program (NIC reset or "
                           "interface re-created): attaching again", interface=name)
            self.attach(name, view)
        elif cur.prog_id != ours:
            self._set(name, ifindex=itf.ifindex, mode=cur.mode, prog_id=cur.prog_id, attached=False,
                      note=f"another XDP program (id {cur.prog_id}) replaced ours; "
                           "Manager.Reattach takes the interface back")
        else:
            note = "" if st.note.startswith(("no such", "another")) else st.note
            self._set(name, ifindex=itf.ifindex, mode=cur.mode, prog_id=cur.prog_id, attached=True, note=note)

    def detach(self, name: str, prog_id: int, why: str = "") -> None:
        st = self._status.get(name)
        if st is None or not st.ifindex:
            return
        try:
            gone = attach.detach(st.ifindex, name, expected_prog_id=prog_id or None)
        except attach.AttachError as e:
            log.error("%s", e)
            return
        if gone:
            self._set(name, attached=False, mode="", prog_id=0, note="detached")
            vlog.event(log, logging.INFO, f"XDP program {gone} detached from {name}{why}",
                       message_id=messages.XDP_DETACHED, interface=name)

    def detach_all(self, prog_id: int) -> None:
        for name in self.names:
            self.detach(name, prog_id)

    def reconfigure(self, names, mode: str, prog_id: int) -> tuple:
        """A new configuration: detach from the interfaces no longer listed; returns the ones to
        attach (new ones, or all of them when the mode changed)."""
        names = tuple(names)
        for name in self.names:
            if name not in names:
                self.detach(name, prog_id, " (no longer configured)")
                self._status.pop(name, None)
        mode_changed = mode != self.mode
        self.names, self.mode = names, mode
        todo = tuple(n for n in names if n not in self._status or mode_changed)
        for name in names:
            self._status.setdefault(name, wire.InterfaceStatus(name))
        return todo
