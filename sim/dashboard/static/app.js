// cnilab dashboard page: draws the lab once from /api/meta, then follows /api/stream (SSE read
// with fetch so the token stays in a header). No framework and no build step: works offline.

const TOKEN_KEY = "cnilab-dashboard-token";
const SVGNS = "http://www.w3.org/2000/svg";
const COL = { good: "#3fb950", bad: "#f85149", warn: "#f0883e", muted: "#8b949e", cf: "#f38020", info: "#58a6ff" };

// -- token: ?token= from the URL the CLI printed -> sessionStorage, then out of the address bar --
(function takeToken() {
  const url = new URL(window.location.href);
  const t = url.searchParams.get("token");
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function headers(json) {
  const h = {};
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (t) h["Authorization"] = "Bearer " + t;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function el(tag, attrs = {}, ...kids) {
  const svg = ["svg", "g", "rect", "path", "text", "line", "polyline", "tspan", "title", "circle"].includes(tag);
  const e = svg ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const $ = (id) => document.getElementById(id);

let META = null;
let LAST = null;

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (!res.ok) throw new Error((data && data.detail && (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))) || res.statusText);
  return data;
}

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.classList.toggle("hidden", !msg);
  if (msg) setTimeout(() => { if (t.textContent === msg) t.classList.add("hidden"); }, 8000);
}

async function act(button, fn) {
  button.disabled = true;
  try { await fn(); toast(""); } catch (e) { toast(String(e.message || e)); } finally { button.disabled = false; }
}

// -- topology drawing ------------------------------------------------------------------------
const NODE_W = 112, NODE_H = 68, IC_GAP = 140;

function layout(topo) {
  // Columns: inet [colo] cf ══ interconnects ══ cust origin; transit under the interconnects.
  const names = topo.nodes.map((n) => n.name);
  const has = (n) => names.includes(n);
  const ics = topo.links.filter((l) => l.interconnect);
  const top = has("colo") ? 130 : 60;
  const y = top + ((Math.max(ics.length, 1) - 1) * IC_GAP) / 2 + 40;
  const pos = { cf: [250, y], cust: [750, y], origin: [940, y] };
  pos.inet = [60, y];
  if (has("colo")) pos.colo = [155, 55];
  let height = y + ((Math.max(ics.length, 1) - 1) * IC_GAP) / 2 + 75;
  if (has("transit")) { pos.transit = [500, height + 45]; height += 125; }
  return { pos, height, y };
}

function drawTopology(topo) {
  const svg = $("topo");
  svg.replaceChildren();
  const { pos, height } = layout(topo);
  svg.setAttribute("viewBox", `0 0 1000 ${height}`);
  const ics = topo.links.filter((l) => l.interconnect);
  const W = NODE_W, H = NODE_H;
  const gLinks = el("g"), gNodes = el("g");
  svg.append(gLinks, gNodes);
  for (const lk of topo.links) {
    const a = pos[lk.a.node], b = pos[lk.b.node];
    if (!a || !b) continue;
    let d, lx, ly;
    if (lk.interconnect) {
      const i = ics.indexOf(lk), n = ics.length;
      const off = (i - (n - 1) / 2) * IC_GAP;
      const mx = (a[0] + b[0]) / 2;
      d = `M ${a[0]} ${a[1]} C ${a[0] + 60} ${a[1] + off * 1.33}, ${b[0] - 60} ${b[1] + off * 1.33}, ${b[0]} ${b[1]}`;
      lx = mx; ly = (a[1] + b[1]) / 2 + off;
    } else {
      d = `M ${a[0]} ${a[1]} L ${b[0]} ${b[1]}`;
      lx = (a[0] + b[0]) / 2; ly = (a[1] + b[1]) / 2;
    }
    const g = el("g", { id: `link-${lk.name}`, "data-link": lk.name });
    g.append(el("path", { d, class: "wire", fill: "none", stroke: COL.good, "stroke-width": 5, "stroke-linecap": "round" }));
    if (lk.interconnect) {
      const ic = lk.interconnect;
      const pm = Object.values(ic.path_mtu || {});
      const mtu = pm.some((v) => v !== ic.mtu) ? `MTU ${ic.mtu} (path ${Math.min(...pm)})` : `MTU ${ic.mtu}`;
      const l1 = [ic.name, ic.site, ic.dataplane, ic.service === "magic-transit" ? "MT" : null].filter(Boolean).join(" · ");
      const l2 = [ic.gre ? "GRE" : "no GRE", ic.vlan ? `VLAN ${ic.vlan}` : "untagged", ic.bfd ? `BFD ${ic.bfd}` : "no BFD"].join(" · ");
      g.append(el("rect", { x: lx - 170, y: ly - 48, width: 340, height: 96, rx: 8, fill: "#0d1117", stroke: "#30363d" }));
      g.append(el("text", { x: lx, y: ly - 24, "text-anchor": "middle", class: "linklabel", text: l1 }));
      g.append(el("text", { x: lx, y: ly - 3, "text-anchor": "middle", class: "linklabel sub", text: l2 }));
      g.append(el("text", { x: lx, y: ly + 17, "text-anchor": "middle", class: "linklabel sub", text: mtu }));
      g.append(el("text", { x: lx, y: ly + 38, "text-anchor": "middle", class: "linklabel status", text: "" }));
      if (lk.path) g.append(el("text", { x: lx, y: ly - 56, "text-anchor": "middle", class: "ratelabel", text: "" }));
    } else {
      g.append(el("title", { text: `${lk.name}: ${lk.a.node}:${lk.a.iface} — ${lk.b.node}:${lk.b.iface}` }));
      g.append(el("text", { x: lx, y: ly + 26, "text-anchor": "middle", class: "linklabel small-status status", text: "" }));
      const t = pos.transit;
      if (lk.path && t) g.append(el("text", { x: t[0] + NODE_W / 2 + 12, y: t[1] + 8, "text-anchor": "start", class: "ratelabel", text: "" }));
    }
    gLinks.append(g);
  }
  const roles = { edge: "Cloudflare AS13335", customer: "customer router", internet: "internet host", origin: "origin", transit: "transit (backup)", colo: "MT ingress colo" };
  for (const n of topo.nodes) {
    const p = pos[n.name];
    if (!p) continue;
    const stroke = n.role === "edge" || n.role === "colo" ? COL.cf : n.role === "customer" ? COL.info : COL.muted;
    gNodes.append(el("g", { class: "node", id: `node-${n.name}`, transform: `translate(${p[0] - W / 2},${p[1] - H / 2})` },
      el("rect", { width: W, height: H, fill: "#161b22", stroke }),
      el("text", { x: W / 2, y: 32, "text-anchor": "middle", class: "name", text: n.name }),
      el("text", { x: W / 2, y: 55, "text-anchor": "middle", class: "role", text: roles[n.role] || n.role })));
  }
}

function updateTopology(snap) {
  const rates = Object.fromEntries(snap.rates.map((r) => [r.label, r]));
  for (const ls of snap.links) {
    const g = document.getElementById(`link-${ls.name}`);
    if (!g) continue;
    const view = META.topology.links.find((l) => l.name === ls.name);
    const colour = !ls.up ? COL.bad : ls.faults.length ? COL.warn : COL.good;
    const wire = g.querySelector(".wire");
    const r = view && view.path ? rates[view.path] : null;
    const pps = r ? r.pps : 0;
    wire.setAttribute("stroke", colour);
    wire.setAttribute("stroke-dasharray", ls.up && !ls.faults.length ? "" : "14 10");
    wire.setAttribute("stroke-width", String(5 + Math.min(10, Math.log10(pps + 1) * 3)));
    const down = ls.ends.filter((e) => !(e.present && e.admin_up && e.carrier)).map((e) => `${e.node} ${!e.present ? "missing" : !e.admin_up ? "admin down" : "no carrier"}`);
    const st = g.querySelector(".status");
    const short = !(view && view.interconnect);
    st.textContent = short ? (ls.up ? ls.faults.join(", ") : "DOWN")
      : (ls.up ? "carrier up" : "DOWN: " + down.join(", ")) + (ls.faults.length ? " · " + ls.faults.join(", ") : "");
    st.setAttribute("fill", colour);
    g.dataset.state = ls.up ? "up" : "down";
    const rl = g.querySelector(".ratelabel");
    if (rl) { rl.textContent = r ? `${fmtRate(pps)} pps` : ""; rl.setAttribute("fill", pps >= 20 ? COL.info : COL.muted); }
  }
}

// -- panels ------------------------------------------------------------------------------------
const BGP_COLOUR = { Established: "good", Idle: "bad", Active: "warn", Connect: "warn", OpenSent: "warn", OpenConfirm: "warn" };
const BFD_COLOUR = { Up: "good", Down: "bad", AdminDown: "bad", Init: "warn" };

function fmtDur(s) {
  if (s === null || s === undefined || s < 0) return "—";
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(ss).padStart(2, "0")}s` : `${ss}s`;
}
function fmtRate(v) { return v >= 10000 ? `${(v / 1000).toFixed(1)}k` : v >= 100 ? v.toFixed(0) : v.toFixed(1); }
function fmtTime(epoch) {
  const d = new Date(epoch * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function renderEdge(snap) {
  const e = snap.edge;
  const pill = $("edge-status");
  pill.textContent = e.reachable ? "edge driver up" : "edge driver unreachable";
  pill.className = "pill " + (e.reachable ? "good" : "bad");
  const err = $("edge-error");
  err.textContent = e.reachable ? "" : e.error || "";
  err.classList.toggle("hidden", e.reachable);
  const tb = $("bgp").querySelector("tbody");
  tb.replaceChildren(...e.sessions.map((s) => {
    const up = s.up ? snap.time - s.since : null;
    const why = s.up ? "" : (s.last_error || s.last_down_reason || "");
    return el("tr", { "data-session": s.key, "data-state": s.state },
      el("td", {}, el("b", { text: s.key }), el("div", { class: "small muted", text: `${s.peer} AS${s.peer_asn}` })),
      el("td", {}, el("span", { class: `state ${BGP_COLOUR[s.state] || "warn"}`, text: s.state }),
        why ? el("div", { class: "small muted", text: why }) : null),
      el("td", { class: "num", text: s.up ? fmtDur(up) : `down ${fmtDur(snap.time - (s.since || snap.time))}` }),
      el("td", { class: "num", title: "sent / received / accepted / rejected", text: `${s.prefixes_sent}/${s.prefixes_received}/${s.prefixes_accepted}/${s.prefixes_rejected}` }));
  }));
  const tbb = $("bfd").querySelector("tbody");
  tbb.replaceChildren(...e.bfd.map((b) => el("tr", { "data-bfd": b.peer, "data-state": b.state },
    el("td", {}, el("b", { text: b.peer }), el("div", { class: "small muted", text: b.ifname || "" })),
    el("td", {}, el("span", { class: `state ${BFD_COLOUR[b.state] || "warn"}`, text: b.state })),
    el("td", { class: BFD_COLOUR[b.remote_state] || "", text: b.remote_state }),
    el("td", { class: "num", text: b.detection_ms ? `${Math.round(b.detection_ms)} ms` : "—", title: `${b.tx_ms}ms x ${b.multiplier}` }),
    el("td", { class: "small", text: b.local_diag ? b.local_diag_name : b.remote_diag ? `peer: ${b.remote_diag_name}` : "—" }))));
}

function renderTunnels(snap) {
  const tun = snap.tunnels || [];
  $("tunnels-box").classList.toggle("hidden", !tun.length);
  const COLOUR = { healthy: "good", degraded: "warn", down: "bad" };
  $("tunnels").querySelector("tbody").replaceChildren(...tun.map((t) => el("tr", { "data-tunnel": t.name, "data-state": t.state },
    el("td", {}, el("b", { text: t.name }), el("div", { class: "small muted", text: `${t.kind}${t.carries.length ? " → " + t.carries.join(", ") : ""}` })),
    el("td", {}, el("span", { class: `state ${COLOUR[t.state] || "warn"}`, text: t.state })),
    el("td", { class: "num", title: "configured / with penalty", text: `${t.priority} / ${t.effective_priority}` }),
    el("td", { class: "small", text: `${t.type}/${t.direction} ${t.rate}` }),
    el("td", { class: "small", text: t.last }))));
}

function sparkline(hist) {
  const W = 300, H = 44;
  const max = Math.max(10, ...hist);
  const n = 120;
  const pts = hist.map((v, i) => `${((i + n - hist.length) / (n - 1)) * W},${H - 3 - (v / max) * (H - 8)}`).join(" ");
  return el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" },
    el("polyline", { points: pts, fill: "none", stroke: COL.info, "stroke-width": 2 }),
    el("text", { x: 4, y: 12, "font-size": 10, fill: COL.muted, text: `max ${fmtRate(max)}` }));
}

function renderRates(snap) {
  const box = $("rates");
  if (!snap.rates.length) { box.replaceChildren(el("div", { class: "muted", text: "no paths" })); return; }
  box.replaceChildren(...snap.rates.map((r) => el("div", { class: "path-rate", "data-path": r.label },
    el("span", { class: "label", text: r.label }),
    el("span", { class: "pps " + (r.pps >= 20 ? "info" : "muted"), text: `${fmtRate(r.pps)} pps` }),
    sparkline(r.history))));
  const t = snap.traffic;
  $("traffic-stats").textContent = t.running
    ? `stream inet → origin ${t.dst} at ${t.rate_pps} pps: ${t.sent} sent, ${t.received} received, ${t.lost} lost`
    : (t.error || "no test stream running (control traffic only: BFD, BGP keepalives)");
}

function renderFaults(snap) {
  const box = $("faults");
  box.replaceChildren(...snap.faults.map((f) => el("div", { class: "fault", "data-fault": `${f.kind}@${f.target}` },
    el("b", { text: `${f.kind}${f.value ? " " + f.value : ""}` }), ` on ${f.target} `,
    el("span", { class: "muted small", text: `since ${fmtTime(f.since)} · ${f.mechanism}` }))));
}

function renderTimeline(snap) {
  const showMinor = $("show-minor").checked;
  const items = snap.timeline.filter((t) => showMinor || t.severity !== "minor").sort((a, b) => b.time - a.time || b.seq - a.seq).slice(0, 150);
  $("timeline").replaceChildren(...items.map((t) => el("li", { class: t.severity, "data-kind": t.kind, "data-source": t.source },
    el("span", { class: "t", text: fmtTime(t.time) }),
    el("span", { class: "src", text: t.source }),
    el("span", { class: "msg", text: (t.session ? `[${t.session}] ` : "") + t.text }))));
}

function renderScenario(snap) {
  const s = snap.scenario, info = META.scenario;
  const run = $("s-run");
  run.disabled = !info.available || s.running;
  run.title = info.available ? "" : info.reason;
  $("s-stop").disabled = !s.running;
  $("s-status").textContent = !info.available ? `unavailable: ${info.reason}`
    : s.running ? `running ${s.file} since ${fmtTime(s.started)} (on its own lab)…`
    : s.summary ? `${s.summary}` + (s.steps.filter((x) => x.status === "fail").map((x) => ` · #${x.index} ${x.description}: ${x.reason}`).join("")) : "";
}

function render(snap) {
  LAST = snap;
  $("lab-name").textContent = snap.lab + (snap.lab_status !== "running" ? ` (${snap.lab_status})` : "");
  updateTopology(snap);
  renderEdge(snap);
  renderTunnels(snap);
  renderRates(snap);
  renderFaults(snap);
  renderTimeline(snap);
  renderScenario(snap);
  $("t-stop").disabled = !snap.traffic.running;
  document.body.dataset.version = String(snap.version);
}

// -- controls ----------------------------------------------------------------------------------
function setupControls() {
  const tSel = $("f-target"), kSel = $("f-kind");
  tSel.replaceChildren(...META.fault_targets.map((t) => el("option", { value: t, text: t })));
  kSel.replaceChildren(...Object.keys(META.fault_kinds).map((k) => el("option", { value: k, text: k })));
  const help = () => { $("f-help").textContent = META.fault_kinds[kSel.value] || ""; };
  kSel.addEventListener("change", help);
  help();
  const inject = (target, kind, value) => api("POST", "/api/faults", { target, kind, value: value || null });
  $("f-inject").addEventListener("click", (e) => act(e.currentTarget, () => inject(tSel.value, kSel.value, $("f-value").value.trim())));
  $("f-clear").addEventListener("click", (e) => act(e.currentTarget, () => api("DELETE", `/api/faults?target=${encodeURIComponent(tSel.value)}`)));
  $("f-clear-all").addEventListener("click", (e) => act(e.currentTarget, () => api("DELETE", "/api/faults")));
  const quick = $("quick");
  for (const lk of META.topology.links.filter((l) => l.interconnect || l.path)) {
    quick.append(
      el("button", { class: "danger", "data-testid": `pull-${lk.name}`, title: "carrier down", text: `Pull ${lk.name}`,
        onclick: (e) => act(e.currentTarget, () => inject(lk.name, "down")) }),
      el("button", { class: "danger", "data-testid": `blackhole-${lk.name}`, title: META.fault_kinds.blackhole, text: `Blackhole ${lk.name}`,
        onclick: (e) => act(e.currentTarget, () => inject(lk.name, "blackhole")) }),
      el("button", { class: "ok", "data-testid": `clear-${lk.name}`, text: `Repair ${lk.name}`,
        onclick: (e) => act(e.currentTarget, () => api("DELETE", `/api/faults?target=${encodeURIComponent(lk.name)}`)) }));
  }
  $("t-start").disabled = !META.traffic_dst;
  $("t-start").addEventListener("click", (e) => act(e.currentTarget, () => api("POST", "/api/traffic", { rate_pps: Number($("t-rate").value) })));
  $("t-stop").addEventListener("click", (e) => act(e.currentTarget, () => api("DELETE", "/api/traffic")));
  const sSel = $("s-file");
  sSel.replaceChildren(...META.scenario.files.map((f) => el("option", { value: f, text: f.replace(/^.*\//, "") })));
  $("s-run").addEventListener("click", (e) => act(e.currentTarget, () => api("POST", "/api/scenario", { file: sSel.value })));
  $("s-stop").addEventListener("click", (e) => act(e.currentTarget, () => api("DELETE", "/api/scenario")));
  $("show-minor").addEventListener("change", () => LAST && renderTimeline(LAST));
}

// -- live stream -------------------------------------------------------------------------------
function setConn(ok, text) {
  const c = $("conn");
  c.textContent = text;
  c.className = "pill " + (ok ? "good" : "bad");
}

async function follow() {
  for (;;) {
    try {
      const res = await fetch("/api/stream", { headers: headers(false), cache: "no-store" });
      if (res.status === 401) { setConn(false, "token needed"); toast("this dashboard needs its token: open the URL `cnilab dashboard` printed"); return; }
      if (!res.ok || !res.body) throw new Error(res.statusText);
      setConn(true, "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (e) {
      console.warn("stream", e);
    }
    setConn(false, "reconnecting");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main() {
  try {
    META = await api("GET", "/api/meta");
  } catch (e) {
    setConn(false, "no access");
    toast(`cannot load the lab: ${e.message}`);
    return;
  }
  $("lab-name").textContent = META.topology.lab;
  $("topo-desc").textContent = `${META.topology.topology}${META.topology.description ? " — " + META.topology.description : ""}`;
  drawTopology(META.topology);
  setupControls();
  follow();
}

main();
