// MYNO console: live updates from /events (server-sent events) and rpc
// calls with fetch. No framework, nothing from the internet.
"use strict";

function csrf() {
  const m = document.querySelector('meta[name="csrf"]');
  return m ? m.content : "";
}

function setOnline(el, online) {
  if (!el) return;
  el.textContent = online ? "online" : "offline";
  el.classList.toggle("is-online", online);
  el.classList.toggle("is-offline", !online);
}

// chart keeps the last 30 numeric readings of a sensor as a polyline.
const series = new Map();
function chart(box, value) {
  const v = parseFloat(value);
  if (Number.isNaN(v)) return;
  const key = box.dataset.sensor;
  const s = series.get(key) || [];
  s.push(v);
  if (s.length > 30) s.shift();
  series.set(key, s);
  const lo = Math.min(...s), hi = Math.max(...s), span = hi - lo || 1;
  const points = s.map((x, i) => `${(i * 120) / 29},${28 - ((x - lo) * 26) / span}`).join(" ");
  box.querySelector("polyline").setAttribute("points", points);
}

function onEvent(ev) {
  const uuid = ev.uuid;
  const page = document.body.dataset.uuid;
  if (ev.kind === "device" && ev.online !== undefined) {
    setOnline(document.querySelector(`#devices tr[data-uuid="${CSS.escape(uuid)}"] .online`), ev.online);
    if (page === uuid) setOnline(document.getElementById("online"), ev.online);
    const seen = document.querySelector(`#devices tr[data-uuid="${CSS.escape(uuid)}"] .last-seen`);
    if (seen) seen.textContent = new Date().toISOString();
  }
  if (ev.kind === "reading" && page === uuid) {
    let box = document.querySelector(`#sensors .sensor[data-sensor="${CSS.escape(ev.sensor)}"]`);
    if (!box) {
      box = document.createElement("div");
      box.className = "sensor";
      box.dataset.sensor = ev.sensor;
      box.innerHTML = '<span class="name"></span> <span class="value"></span> <small class="time"></small> <svg class="chart" viewBox="0 0 120 30" preserveAspectRatio="none"><polyline points=""/></svg>';
      box.querySelector(".name").textContent = ev.sensor;
      document.getElementById("sensors").appendChild(box);
    }
    box.querySelector(".value").textContent = ev.value;
    box.querySelector(".time").textContent = ev.timestamp || "";
    chart(box, ev.value);
  }
  if (ev.kind === "job" && ev.job) {
    const j = ev.job;
    if (document.body.dataset.job !== String(j.job)) return;
    const row = document.querySelector(`#job tr.job-device[data-uuid="${CSS.escape(uuid)}"]`);
    if (!row) return;
    row.querySelector("progress").value = j.percent;
    row.querySelector(".slices").textContent = j.slices || "";
    row.querySelector(".state").textContent = j.state;
    row.querySelector(".version").textContent = j.version || "";
    row.querySelector(".detail").textContent = j.detail || "";
    if (j.phases) {
      const p = document.createElement("small");
      p.className = "phases";
      p.textContent = " " + j.phases;
      row.querySelector(".detail").appendChild(p);
    }
  }
}

function listen() {
  if (!("events" in document.body.dataset)) return;
  const job = document.body.dataset.job;
  const es = new EventSource(job ? `/events?job=${encodeURIComponent(job)}` : "/events");
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
  es.onopen = () => document.body.classList.add("live");
}

// An rpc form: the browser checks the fields (required, bounds, step,
// pattern: the module's rules), then the bridge answers; its result or
// its rpc-error is shown as it came.
function rpcForms() {
  for (const form of document.querySelectorAll("form.rpc-form")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const out = form.parentElement.querySelector("pre.result");
      const data = new FormData(form);
      if (form.dataset.oneof) {
        const given = [...data.entries()].filter(([, v]) => (typeof v === "string" ? v !== "" : v.size > 0));
        if (given.length !== 1) {
          out.className = "result rpc-error";
          out.textContent = `Give exactly one field (choice ${form.dataset.oneof}), not ${given.length}.`;
          return;
        }
      }
      out.className = "result pending";
      out.textContent = "…";
      const r = await fetch(form.action, { method: "POST", body: data, headers: { "X-CSRF-Token": csrf() } });
      if (!r.ok) {
        out.className = "result rpc-error";
        out.textContent = `${r.status}: ${await r.text()}`;
        return;
      }
      const res = await r.json();
      if (res.error) {
        out.className = "result rpc-error";
        const e = res.error;
        out.textContent = `rpc-error ${e.tag}${e.appTag ? " (" + e.appTag + ")" : ""}${e.path ? " at " + e.path : ""}: ${e.message || ""}`;
        return;
      }
      out.className = "result ok";
      out.textContent = `retval: ${res.retval}` + (res.outputs || []).map((o) => `\n${o.Name}: ${o.Value}`).join("");
    });
  }
}

// The update form's devices come preselected from ?device=.
function preselect() {
  const want = new URLSearchParams(location.search).getAll("device");
  for (const box of document.querySelectorAll('#update input[name="device"]')) {
    if (want.includes(box.value)) box.checked = true;
  }
}

// Renew buttons of the E2E page: the outcome replaces the row's cells.
function renewButtons() {
  for (const b of document.querySelectorAll("button.renew")) {
    b.addEventListener("click", async () => {
      const row = b.closest("tr");
      const out = row.querySelector(".outcome");
      out.textContent = "renewing…";
      b.disabled = true;
      const body = new URLSearchParams({ device: b.dataset.uuid });
      const r = await fetch("/e2e/renew", { method: "POST", body, headers: { "X-CSRF-Token": csrf() } });
      b.disabled = false;
      if (!r.ok) {
        out.textContent = `${r.status}: ${await r.text()}`;
        return;
      }
      const v = await r.json();
      if (v.error) {
        out.textContent = v.error;
        return;
      }
      row.querySelector(".serial").textContent = v.serial;
      row.querySelector(".not-after").textContent = v.notAfter;
      out.textContent = `renewed (handshake ${v.handshake}, renewal ${v.renewal})`;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  listen();
  rpcForms();
  preselect();
  renewButtons();
});
