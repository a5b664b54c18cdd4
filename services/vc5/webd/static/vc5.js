// vc5 console: polls status.json.gz and log/<N> every 2 s (as vc5's console does) and updates
// the page in place: every row is keyed, existing nodes are reused and only changed text,
// classes and attributes are written, so nothing flickers and scroll/selection/hover survive.
"use strict";
(function () {
  const POLL_MS = 2000;
  const LOG_MAX = 1000;
  const DAEMONS = {
    "org.vc5.Health1": ["vc5-healthd", "services, backends and VIPs are unknown"],
    "org.vc5.Bgp1": ["vc5-bgpd", "BGP sessions and advertised routes are unknown"],
    "org.vc5.XdpLoader1": ["vc5-xdp-loader", "traffic counters are unavailable"],
  };
  let lastLog = 0;

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function setText(n, t) { t = String(t); if (n.textContent !== t) n.textContent = t; }
  function setClass(n, c) { if (n.className !== c) n.className = c; }
  function setAttr(n, k, v) {
    if (v === null || v === undefined || v === "") { if (n.hasAttribute(k)) n.removeAttribute(k); }
    else if (n.getAttribute(k) !== v) n.setAttribute(k, v);
  }

  // Make parent's children exactly `items`, in order, reusing nodes by key.
  function sync(parent, items, keyOf, make, update) {
    const old = new Map();
    for (const c of Array.from(parent.children)) old.set(c.dataset.key, c);
    let prev = null;
    for (const item of items) {
      const key = keyOf(item);
      let node = old.get(key);
      if (node) old.delete(key); else { node = make(item); node.dataset.key = key; }
      update(node, item);
      const want = prev ? prev.nextSibling : parent.firstChild;
      if (node !== want) parent.insertBefore(node, want);
      prev = node;
    }
    for (const n of old.values()) n.remove();
  }

  // ---- formatting
  function si(n, digits) {
    n = Number(n) || 0;
    const units = ["", "k", "M", "G", "T", "P"];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    const s = i === 0 ? String(Math.round(n)) : n.toPrecision(digits || 3);
    return s + (units[i] ? " " + units[i] : " ");
  }
  const bits = (octetsPerS) => si(octetsPerS * 8) + "bit/s";
  const pps = (n) => si(n) + "pkt/s";
  const fps = (n) => si(n) + "flow/s";
  function count(n) { return (Number(n) || 0).toLocaleString("en-US"); }
  function dhms(s) {
    s = Math.max(0, Math.floor(Number(s) || 0));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + "d" + h + "h";
    if (h) return h + "h" + m + "m";
    if (m) return m + "m" + x + "s";
    return x + "s";
  }
  function latency(ns) {
    ns = Number(ns) || 0;
    return ns >= 1000 ? (ns / 1000).toPrecision(3) + " µs" : ns + " ns";
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {hour12: false});

  // ---- summary and BGP
  function summary(st) {
    const s = st.summary || {};
    setText($("c-traffic").lastChild, bits(s.ingress_octets_per_second));
    setText($("c-packets").lastChild, pps(s.ingress_packets_per_second));
    setText($("c-flows").lastChild, fps(s.flows_per_second));
    setText($("c-active").lastChild, count(s.current));
    setText($("c-latency").lastChild, s.latency_ns ? latency(s.latency_ns) : "–");
    setText($("c-uptime").lastChild, dhms(s.uptime));

    const peers = Object.keys(st.bgp || {}).sort().map((k) => [k, st.bgp[k]]);
    sync($("peers"), peers, (p) => p[0], () => {
      const c = el("div", "card peer");
      c.append(el("div", "k"), el("div", "v"), el("div", "s"));
      return c;
    }, (c, [addr, p]) => {
      const up = String(p.state).toUpperCase() === "ESTABLISHED";
      setClass(c, "card peer" + (up ? " up" : ""));
      setText(c.children[0], "BGP " + addr);
      setText(c.children[1], p.state);
      setText(c.children[2], "for " + dhms(p.duration_s) + " · " +
        (up ? p.adj_rib_out.length + " routes advertised" : (p.last_error || "not established")));
      setAttr(c, "title", p.last_error ? "last error: " + p.last_error : "");
    });

    const gone = Object.keys(DAEMONS).filter((k) => st.daemons && st.daemons[k] === false);
    const box = $("absent");
    box.hidden = gone.length === 0;
    sync(box, gone, (k) => k, () => el("div"), (n, k) => setText(n,
      DAEMONS[k][0] + " is not running (" + k + " is not on the bus): " + DAEMONS[k][1] + "."));
  }

  // ---- VIP table
  function vipOrder(st) {
    // down VIPs first (as vc5), then by address
    return (st.vip || []).slice().sort((a, b) => (a.up - b.up) || addrCmp(a.vip, b.vip));
  }
  function addrCmp(a, b) {
    const pa = a.split(/[.:]/).map((x) => parseInt(x, 16) || 0), pb = b.split(/[.:]/).map((x) => parseInt(x, 16) || 0);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
    return 0;
  }
  function stateCell(td, cls, word, secs, extra) {
    if (!td.firstChild) { td.append(el("span", "pill"), el("span"), el("span", "hide-s")); }
    setClass(td, "state " + cls);
    setText(td.children[0], word);
    setText(td.children[1], dhms(secs));
    setText(td.children[2], extra || "");
  }
  function statCells(tr, first, stats) {
    const s = stats || {};
    setText(tr.children[first], bits(s.ingress_octets_per_second));
    setText(tr.children[first + 1], pps(s.ingress_packets_per_second));
    setText(tr.children[first + 2], fps(s.flows_per_second));
    setText(tr.children[first + 3], count(s.current));
    tr.children[first + 1].className = tr.children[first + 2].className = "hide-s";
  }
  function row(n) {
    const tr = el("tr");
    for (let i = 0; i < n; i++) tr.append(el("td"));
    return tr;
  }

  function vips(st) {
    const list = vipOrder(st);
    $("novips").hidden = list.length > 0;
    sync($("vips").tBodies[0], list, (v) => v.vip, () => {
      const tr = row(6);
      const a = el("a", "vlink");
      tr.children[0].append(a);
      return tr;
    }, (tr, v) => {
      setClass(tr, v.up ? "up" : "dn");
      setAttr(tr, "data-state", v.up ? "up" : "down");
      const a = tr.children[0].firstChild;
      setText(a, v.vip);
      setAttr(a, "href", "#vip-" + v.vip);
      stateCell(tr.children[1], v.up ? "up" : "dn", v.up ? "UP" : "DOWN", v.for);
      statCells(tr, 2, v.stats);
    });
  }

  // ---- per-VIP service tables
  function backendState(d) {
    if (d.disabled) return ["ds", "DISABLED", "disabled"];
    if (d.drained) return ["dr", "DRAINED", "drained"];
    return d.up ? ["up", "UP", "up"] : ["dn", "DOWN", "down"];
  }

  function services(st) {
    const byVip = st.services || {};
    const order = vipOrder(st).map((v) => [v.vip, v]);
    for (const k of Object.keys(byVip)) if (!order.find((o) => o[0] === k)) order.push([k, null]);
    sync($("services"), order, (o) => o[0], () => {
      const div = el("div", "vip");
      const h = el("h3");
      h.append(el("span", "pill"), el("a"), el("span", "muted"));
      div.append(h, el("div"));
      return div;
    }, (div, [vip, v]) => {
      div.id = "vip-" + vip;
      const up = v ? v.up : false;
      const h = div.firstChild;
      setClass(h.children[0], "pill " + (up ? "up" : "dn"));
      setText(h.children[0], up ? "UP" : "DOWN");
      setText(h.children[1], vip);
      setAttr(h.children[1], "href", "#vip-" + vip);
      setText(h.children[2], v ? dhms(v.for) + " · " + bits(v.stats.ingress_octets_per_second) : "");
      const svcs = (byVip[vip] || []).slice().sort((a, b) => (a.port - b.port) || a.protocol.localeCompare(b.protocol));
      sync(div.lastChild, svcs, (s) => s.port + "/" + s.protocol, serviceTable, updateService);
    });
  }

  function serviceTable() {
    const wrap = el("div", "svc scroll");
    const t = el("table", "grid");
    const cap = el("caption");
    cap.append(el("span"), el("span", "muted"));
    const head = el("thead");
    const hr = el("tr");
    for (const [h, cls] of [["Backend", ""], ["State", ""], ["Traffic", ""], ["Packets", "hide-s"],
      ["New flows", "hide-s"], ["Active", ""]]) hr.append(el("th", cls, h));
    head.append(hr);
    const body = el("tbody");
    const srow = row(6);
    srow.className = "service";
    body.append(srow);
    const backends = el("tbody");
    t.append(cap, head, body, backends);
    wrap.append(t);
    return wrap;
  }

  function updateService(wrap, s) {
    const t = wrap.firstChild;
    const cap = t.caption;
    setText(cap.children[0], s.name || "(unnamed)");
    const total = s.destinations.length;
    setText(cap.children[1], (s.description ? s.description + " " : "") + "[" + s.available + "/" + total +
      " available, " + s.required + " required]" + (s.sticky ? " sticky" : "") + (s.scheduler ? " " + s.scheduler : ""));
    const srow = t.tBodies[0].firstChild;
    setClass(srow, "service " + (s.up ? "up" : "dn"));
    setAttr(srow, "data-state", s.up ? "up" : "down");
    setText(srow.children[0], s.address + ":" + s.port + ":" + s.protocol);
    setAttr(srow.children[0], "title", s.address + ":" + s.port + ":" + s.protocol);
    stateCell(srow.children[1], s.up ? "up" : "dn", s.up ? "UP" : "DOWN", s.for);
    statCells(srow, 2, s.stats);
    const key = s.address + ":" + s.port + ":" + s.protocol;
    sync(t.tBodies[1], s.destinations, (d) => d.address + ":" + d.port, () => row(6), (tr, d) => {
      const [cls, word, state] = backendState(d);
      setClass(tr, cls);
      setAttr(tr, "data-backend", key + "/" + d.address + ":" + d.port);
      setAttr(tr, "data-state", state);
      setText(tr.children[0], d.address + ":" + d.port);
      stateCell(tr.children[1], cls, word, d.for, " (" + d.took + "ms)");
      setAttr(tr.children[1], "title", "Last check: " + (d.diagnostic || "none yet") + (d.mac ? "\nMAC " + d.mac : ""));
      setAttr(tr.children[0], "title", d.mac ? "MAC " + d.mac + (d.weight !== 1 ? ", weight " + d.weight : "") : "");
      statCells(tr, 2, d.stats);
    });
  }

  // ---- log
  function appendLog(entries) {
    if (!entries.length) return;
    const box = $("log");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
    const frag = document.createDocumentFragment();
    for (const e of entries) {
      const level = String(e.text).split(" ", 1)[0];
      const ln = el("span", "ln lv-" + level);
      ln.append(el("span", "t", clock(e.time)), document.createTextNode(e.text));
      frag.append(ln);
      lastLog = Math.max(lastLog, e.indx);
    }
    box.append(frag);
    while (box.childElementCount > LOG_MAX) box.firstChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  // ---- polling
  async function getJSON(url) {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  let okAt = 0;
  async function poll() {
    try {
      const st = await getJSON("status.json.gz");
      summary(st);
      vips(st);
      services(st);
      okAt = Date.now() / 1000;
      const live = $("live");
      setClass(live, "live");
      setText(live, "updated " + clock(okAt));
      try { appendLog(await getJSON("log/" + lastLog)); } catch (e) { /* next round */ }
    } catch (e) {
      const live = $("live");
      setClass(live, "live stale");
      setText(live, okAt ? "no answer since " + clock(okAt) : "no answer");
    }
    setTimeout(poll, POLL_MS);
  }

  setText($("host"), location.host);
  document.title = "vc5 · " + location.host;
  poll();
})();
