// The dashboard: renders each "status" event of /v1/status/events (the
// node's status with one page of its topics, and their recent hand-overs,
// once a second). "next topics" reconnects for the page after the last
// topic shown. Errors are kept in window.batonErrors for the browser test.
"use strict";
window.batonErrors = [];
window.addEventListener("error", (e) => window.batonErrors.push(String(e.message)));

const lags = new Map(); // topic -> last 60 lag values, for the topics shown
let after = ""; // the page of topics shown: those after this one
let next = ""; // the after of the next page, if there is one
let es = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function left(iso) {
  if (!iso || iso.startsWith("0001")) return "-";
  const ms = Date.parse(iso) - Date.now();
  return ms > 0 ? (ms / 1000).toFixed(1) + " s" : "expired";
}

function spark(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 60 20");
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${i},${(20 - 18 * v / max).toFixed(1)}`).join(" ");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts);
  svg.appendChild(line);
  return svg;
}

function render(d) {
  const st = d.status || {};
  document.getElementById("node").textContent = `${st.node || "?"} (${st.addr || ""}), access ${st.access || "?"}`;

  const problems = document.getElementById("problems");
  problems.replaceChildren();
  for (const p of st.problems || []) problems.appendChild(el("li", `${p.kind}${p.topic ? " " + p.topic : ""}: ${p.message}`, "bad"));
  if (!problems.children.length) problems.appendChild(el("li", "none", "ok"));

  const nodes = document.querySelector("#nodes tbody");
  nodes.replaceChildren();
  for (const m of st.members || []) nodes.appendChild(row([m.node, m.addr, m.state, String(m.leases), left(m.expires_at)]));

  const c = st.counts || {};
  const shown = (st.topics || []).length;
  document.getElementById("counts").textContent = `${c.topics || 0} topics, ${c.held || 0} with a publisher, ${c.unheld || 0} without; ` +
    `${c.publishing || 0} published by this node. Shown: ${shown}` + (after ? ` after ${after}` : "") + ".";
  next = st.topics_next || "";
  document.getElementById("more").hidden = !next;
  document.getElementById("first").hidden = !after;
  const onPage = new Set((st.topics || []).map((t) => t.topic));
  for (const k of lags.keys()) if (!onPage.has(k)) lags.delete(k);

  const topics = document.querySelector("#topics tbody");
  topics.replaceChildren();
  for (const t of st.topics || []) {
    const hist = lags.get(t.topic) || [];
    hist.push(t.queue_depth);
    if (hist.length > 60) hist.shift();
    lags.set(t.topic, hist);
    const lg = t.ledger ? `${t.ledger.size} leaves, checkpoint ${t.ledger.checkpoint_size}, ${t.ledger.cosignatures} cosignatures` + (t.ledger.alarms ? `, ${t.ledger.alarms} ALARMS` : "") : "-";
    const tr = row([t.topic, t.held ? t.holder : "none", String(t.epoch), t.held ? left(t.expires_at) : "-",
      String(t.last_seq), String(t.cursor.seq), String(t.queue_depth) + (t.stalled ? " STALLED" : ""), spark(hist), String(t.terminals), lg]);
    tr.dataset.topic = t.topic;
    if (!t.held || t.stalled) tr.className = "bad";
    topics.appendChild(tr);
  }

  const all = [];
  for (const [topic, hs] of Object.entries(d.handovers || {})) for (const h of hs) all.push(h);
  all.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  const tl = document.getElementById("timeline");
  tl.replaceChildren();
  for (const h of all.slice(0, 50)) {
    const to = h.successor ? `${h.successor} (epoch ${h.successor_epoch})` : "no successor yet";
    const ms = h.handover_ms !== undefined ? `, ${h.handover_ms} ms` : "";
    const li = el("li", `${new Date(h.at).toLocaleTimeString()} ${h.topic}: ${h.holder} (epoch ${h.epoch}) ${h.reason} at seq ${h.last_seq} -> ${to}${ms}`);
    li.dataset.reason = h.reason;
    li.dataset.topic = h.topic;
    li.dataset.epoch = String(h.epoch);
    tl.appendChild(li);
  }
}

function connect() {
  const conn = document.getElementById("conn");
  if (es) es.close();
  es = new EventSource("../v1/status/events" + (after ? "?after=" + encodeURIComponent(after) : ""));
  es.addEventListener("status", (e) => {
    conn.textContent = "live";
    conn.className = "ok";
    render(JSON.parse(e.data));
  });
  es.onerror = () => {
    conn.textContent = "reconnecting";
    conn.className = "bad";
  };
}

document.getElementById("more").addEventListener("click", () => { after = next; connect(); });
document.getElementById("first").addEventListener("click", () => { after = ""; connect(); });
connect();
