// The page: one form per RKNN method, jobs followed live over server-sent events, the graph and the plots.
import { drawGraph, layerDetails, heat } from "./graph.js";
import { perfView, accuracyView, compareView } from "./plots.js";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (sel) => document.querySelector(sel);
const ui = { state: null, graph: null, selected: new Set(), zoom: 1, perfSort: {}, lastDataset: "" };

async function api(path, options = {}) {
  const headers = { "X-Rknn-Token": TOKEN, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(body.error || `E ${response.status}`);
  return body;
}

function logLines(lines) {
  const log = $("#tab-log");
  for (const line of lines) {
    const span = document.createElement("span");
    span.className = line[0];
    span.textContent = line + "\n";
    log.appendChild(span);
  }
  log.scrollTop = log.scrollHeight;
}

function setStatus(state, title, seconds, error) {
  $("#status").className = `status ${state}`;
  $("#job-title").textContent = title;
  $("#job-time").textContent = seconds !== undefined ? `${seconds.toFixed(1)} s` : "";
  $("#job-progress").hidden = state !== "running";
  $("#job-cancel").hidden = state !== "running";
  $("#job-error").textContent = error || "";
}

function showTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === `tab-${name}`));
}

// jobs ---------------------------------------------------------------------------------------------
function follow(jobId) {
  return new Promise((resolve) => {
    ui.running = jobId;
    const source = new EventSource(`/api/jobs/${jobId}/events?token=${encodeURIComponent(TOKEN)}`);
    source.onmessage = (event) => {
      const snap = JSON.parse(event.data);
      logLines(snap.lines);
      setStatus(snap.state, `${snap.title}: ${snap.state}`, snap.seconds, snap.error);
      if (snap.state !== "running") {
        source.close();
        ui.running = null;
        resolve(snap);
      }
    };
    source.onerror = () => {  // the stream broke: ask once for the end state
      source.close();
      api(`/api/jobs/${jobId}?wait=30`).then((snap) => { ui.running = null; resolve(snap); });
    };
  });
}

// body[data-step] is "running" from the click until the page shows the step's end (tests wait for it)
async function runStep(method, start) {
  document.body.dataset.step = "running";
  const snap = await runAndShow(method, start);
  document.body.dataset.step = snap ? snap.state : "failed";
}

async function runAndShow(method, start) {
  logLines([`> ${method}`]);
  setStatus("running", `${method}: starting`);
  let started;
  try {
    started = await start();
  } catch (err) {
    logLines([err.message]);
    setStatus("failed", `${method}: refused`, undefined, err.message);
    markStep(method, false);
    return null;
  }
  const snap = await follow(started.job);
  markStep(method, snap.state === "done");
  if (snap.state === "done") showResult(method, snap.result);
  await refresh();
  return snap;
}

function markStep(method, ok) {
  const box = document.querySelector(`details[data-method="${method}"]`);
  if (box) { box.classList.toggle("done", ok); box.classList.toggle("failed", !ok); }
}

function showResult(method, result) {
  if (!result) return;
  if (result.perf) { perfView($("#tab-perf"), result.perf, ui.perfSort); showTab("perf"); }
  if (result.accuracy) { accuracyView($("#tab-accuracy"), result.accuracy); showTab("accuracy"); $("#overlay").value = "error"; }
  if (result.outputs) { outputsView(result.outputs); showTab("results"); }
  if (result.value) { $("#tab-results").innerHTML = ""; const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(result.value, null, 2); $("#tab-results").appendChild(pre); showTab("results"); }
  if (method === "eval_perf") $("#overlay").value = "time";
}

function outputsView(outputs) {
  const host = $("#tab-results");
  host.innerHTML = "";
  for (const out of outputs) {
    const h = document.createElement("h3");
    h.textContent = `output ${out.index} '${out.name}': shape ${JSON.stringify(out.shape)} ${out.dtype}`;
    host.appendChild(h);
    const pre = document.createElement("pre");
    pre.className = "output";
    pre.textContent = out.top
      ? `-----TOP ${out.top.length}-----\n` + out.top.map(([i, s]) => `[${i}]: ${s.toPrecision(8)}`).join("\n")
      : `min ${out.min} max ${out.max}; first ${out.values.length} of ${out.size} values:\n${out.values.map((v) => +v.toPrecision(6)).join(" ")}`;
    host.appendChild(pre);
  }
}

// forms --------------------------------------------------------------------------------------------
function input(field) {
  if (field.kind === "bool") {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !!field.default;
    return box;
  }
  if (field.kind === "choice") {
    const select = document.createElement("select");
    for (const c of field.choices) select.add(new Option(String(c), String(c), false, c === field.default));
    if (field.default === null) select.add(new Option("(default)", "", true, true), 0);
    return select;
  }
  const box = document.createElement("input");
  box.type = "text";
  if (["path", "new_path", "input_files"].includes(field.kind)) box.setAttribute("list", "workspace-files");
  box.placeholder = { sizes: "3,224,224#...", names: "name1 name2", json: "JSON", input_files: "image.png (several: space separated)" }[field.kind] || "";
  if (field.default !== null && field.default !== undefined && field.kind !== "bool") box.value = String(field.default);
  return box;
}

function formValues(form, fields) {
  const values = {};
  for (const field of fields) {
    const box = form.elements[field.name];
    if (field.kind === "bool") values[field.name] = box.checked;
    else if (box.value !== "") values[field.name] = box.value;
  }
  return values;
}

function stepForm(method, fields) {
  const box = document.createElement("details");
  box.className = "step";
  box.dataset.method = method;
  box.innerHTML = `<summary>${method}</summary>`;
  const form = document.createElement("form");
  form.className = "step-form";
  form.dataset.method = method;
  for (const field of fields) {
    const label = document.createElement("label");
    label.textContent = field.name + (field.required ? " *" : "");
    const box2 = input(field);
    box2.name = field.name;
    label.appendChild(box2);
    form.appendChild(label);
  }
  const run = document.createElement("button");
  run.type = "submit";
  run.className = "run";
  run.textContent = `Run ${method}`;
  form.appendChild(run);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = formValues(form, fields);
    if (values.dataset) ui.lastDataset = values.dataset;
    runStep(method, () => api(`/api/call/${method}`, { method: "POST", headers: { "content-type": "application/json" },
                                                           body: JSON.stringify({ values }) }));
  });
  box.appendChild(form);
  return box;
}

function buildForms(state) {
  const host = $("#forms");
  host.innerHTML = "";
  host.appendChild(stepForm("config", state.forms.config));
  const loaders = document.createElement("details");
  loaders.className = "step";
  loaders.dataset.method = "load";
  loaders.innerHTML = "<summary>load a model</summary>";
  const pick = document.createElement("select");
  pick.id = "loader";
  for (const name of state.loaders) pick.add(new Option(name, name));
  const slot = document.createElement("div");
  const show = () => { slot.innerHTML = ""; const f = stepForm(pick.value, state.forms[pick.value]); f.open = true; slot.appendChild(f); };
  pick.addEventListener("change", show);
  loaders.append(pick, slot);
  host.appendChild(loaders);
  show();
  for (const [method, fields] of Object.entries(state.forms)) {
    if (method === "config" || state.loaders.includes(method)) continue;
    host.appendChild(stepForm(method, fields));
  }
}

// graph ----------------------------------------------------------------------------------------------
function redraw() {
  if (!ui.graph) return;
  const overlay = drawGraph($("#graph"), ui.graph, $("#overlay").value, ui.selected, {
    zoom: ui.zoom,
    hover: (n) => { const info = $("#layer-info"); info.innerHTML = ""; info.appendChild(layerDetails(ui.graph, n)); },
    click: (n) => { ui.selected.has(n.name) ? ui.selected.delete(n.name) : ui.selected.add(n.name); showFloat(); redraw(); },
  });
  const legend = $("#legend");
  legend.innerHTML = "";
  if (overlay) {
    const has = ui.graph.nodes.some((n) => overlay.value(n) !== null && overlay.value(n) !== undefined);
    legend.innerHTML = has ? `<span>${overlay.label}</span><span>${fmt(overlay.min)}</span>` +
      `<span class="bar" style="background: linear-gradient(to right, ${heat(0)}, ${heat(0.5)}, ${heat(1)})"></span><span>${fmt(overlay.max)}</span>`
      : `<span class="hint">${overlay.empty}</span>`;
  }
}

const fmt = (v) => (typeof v === "number" ? (v !== 0 && Math.abs(v) < 1e-2 ? v.toExponential(2) : +v.toPrecision(4)) : v);

function showFloat() {
  $("#float-layers").textContent = ui.selected.size ? [...ui.selected].join(", ") : "No layer kept in float.";
  if (!$("#float-dataset").value && ui.lastDataset) $("#float-dataset").value = ui.lastDataset;
}

async function refresh() {
  const state = await api("/api/state");
  ui.state = state;
  $("#workspace").textContent = state.workspace;
  for (const sel of ["#compare-a", "#compare-b"]) {
    const select = $(sel), keep = select.value;
    select.innerHTML = "";
    for (const b of state.builds) select.add(new Option(b.label, b.id));
    if (keep) select.value = keep;
  }
  if (state.builds.length > 1 && !$("#compare-a").dataset.touched) {
    $("#compare-a").value = state.builds[state.builds.length - 2].id;
    $("#compare-b").value = state.builds[state.builds.length - 1].id;
  }
  const files = await api("/api/files");
  $("#workspace-files").innerHTML = files.files.map((f) => `<option value="${f.replace(/"/g, "&quot;")}">`).join("");
  ui.graph = (await api("/api/graph")).graph;
  if (ui.graph) {
    for (const name of state.float_layers) ui.selected.add(name);
    redraw();
  }
  if ($("#tab-script").classList.contains("active")) await showScript();
}

async function showScript() {
  $("#script-text").textContent = await api("/api/script");
  showTab("script");
}

async function upload(files) {
  for (const file of files) {
    try {
      const done = await api(`/api/files?path=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
      logLines([`I added '${done.path}' to the workspace`]);
    } catch (err) { logLines([err.message]); setStatus("failed", "upload refused", undefined, err.message); }
  }
  await refresh();
}

function wire() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () =>
    (b.dataset.tab === "script" ? showScript() : showTab(b.dataset.tab))));
  $("#overlay").addEventListener("change", redraw);
  $("#zoom-in").addEventListener("click", () => { ui.zoom *= 1.25; redraw(); });
  $("#zoom-out").addEventListener("click", () => { ui.zoom /= 1.25; redraw(); });
  $("#show-script").addEventListener("click", showScript);
  $("#job-cancel").addEventListener("click", () => ui.running && api(`/api/jobs/${ui.running}/cancel`, { method: "POST" }));
  $("#reset").addEventListener("click", async () => {
    await api("/api/reset", { method: "POST" });
    ui.selected.clear(); ui.graph = null; $("#graph").innerHTML = '<p class="hint">Load a model to see its graph.</p>';
    $("#tab-log").textContent = ""; setStatus("idle", "new session"); buildForms(ui.state); await refresh();
  });
  $("#keep-float").addEventListener("click", () => {
    const body = { layers: [...ui.selected], dataset: $("#float-dataset").value };
    runStep("keep_float", () => api("/api/keep_float", { method: "POST", headers: { "content-type": "application/json" },
                                                             body: JSON.stringify(body) }));
  });
  $("#compare-a").addEventListener("change", () => ($("#compare-a").dataset.touched = "1"));
  $("#compare-run").addEventListener("click", async () => {
    try {
      compareView($("#compare-view"), await api(`/api/compare?a=${$("#compare-a").value}&b=${$("#compare-b").value}`));
    } catch (err) { setStatus("failed", "compare", undefined, err.message); }
  });
  const zone = $("#dropzone");
  for (const target of [zone, document.body]) {
    target.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    target.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); upload(e.dataTransfer.files); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
}

async function main() {
  wire();
  const state = await api("/api/state");
  buildForms(state);
  await refresh();
  document.body.dataset.ready = "1";
}

main().catch((err) => setStatus("failed", "the page could not start", undefined, err.message));
