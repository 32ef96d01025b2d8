// Tables and SVG charts: the perf table (sortable) with its bar chart, the accuracy curves, the build comparison.
import { el } from "./graph.js";

function table(columns, rows, onSort) {
  const t = document.createElement("table");
  t.className = "data";
  const head = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = c.label;
    if (c.text) th.className = "text";
    th.dataset.key = c.key;
    if (onSort) th.addEventListener("click", () => onSort(c.key));
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of columns) {
      const td = tr.insertCell();
      const v = r[c.key];
      td.textContent = v === null || v === undefined ? "" : c.format ? c.format(v) : v;
      if (c.text) td.className = "text";
    }
  }
  return t;
}

function bars(title, items, unit) {  // items: [{label, values: [number|null], colors}]
  const rowH = 16, labelW = 170, plotW = 360, series = Math.max(1, ...items.map((i) => i.values.length));
  const max = Math.max(1e-12, ...items.flatMap((i) => i.values.filter((v) => v !== null)));
  const height = 24 + items.length * (rowH * series + 4);
  const svg = el("svg", { width: labelW + plotW + 80, height, class: "plot bars" });
  svg.appendChild(el("text", { x: 0, y: 12, "font-weight": 600 }, title));
  items.forEach((item, i) => {
    const y0 = 20 + i * (rowH * series + 4);
    svg.appendChild(el("text", { x: 0, y: y0 + rowH - 4 }, item.label.slice(0, 26)));
    item.values.forEach((v, k) => {
      if (v === null || v === undefined) return;
      const wpx = (v / max) * plotW, y = y0 + k * rowH;
      svg.appendChild(el("rect", { x: labelW, y: y + 2, width: Math.max(wpx, 1), height: rowH - 4, fill: item.colors[k] }));
      svg.appendChild(el("text", { x: labelW + wpx + 4, y: y + rowH - 4 }, `${+v.toPrecision(4)}${unit}`));
    });
  });
  return svg;
}

export function perfView(host, perf, state) {
  host.innerHTML = "";
  const head = document.createElement("p");
  head.textContent = `chip ${perf.chip ?? "none (PC times)"} · ${perf.dtype ?? ""} · total ${perf.total_time} µs modelled` +
                     (perf.npu_mhz ? ` at ${perf.npu_mhz} MHz` : "") + ` · this PC ${perf.pc_total_time} µs`;
  host.appendChild(head);
  const key = state.sortKey || "id", dir = state.sortDir || 1;
  const rows = [...perf.layers].sort((a, b) => (a[key] > b[key] ? dir : a[key] < b[key] ? -dir : 0));
  const columns = [{ key: "id", label: "Layer ID" }, { key: "name", label: "Name", text: true },
                   { key: "operation", label: "Operation", text: true }, { key: "time", label: "Time(us)" },
                   { key: "bound", label: "Bound", text: true }, { key: "device", label: "Device", text: true },
                   { key: "pc_time", label: "PC(us)" }];
  const wrap = document.createElement("div");
  wrap.className = "plots";
  const t = table(columns, rows, (k) => {
    state.sortDir = state.sortKey === k ? -dir : k === "time" || k === "pc_time" ? -1 : 1;
    state.sortKey = k;
    perfView(host, perf, state);
  });
  t.id = "perf-table";
  wrap.appendChild(t);
  const chart = bars("modelled time per layer (µs)", rows.map((r) => ({ label: `${r.id} ${r.name}`, values: [r.time],
                                                                         colors: [r.device === "CPU" ? "#c62828" : "#3f6fb5"] })), " µs");
  chart.id = "perf-chart";
  wrap.appendChild(chart);
  host.appendChild(wrap);
}

function curves(title, rows, keys, id) {  // log-y line chart over the layers
  const W = 520, H = 220, L = 60, B = 40, T = 20;
  const values = rows.flatMap((r) => keys.map((k) => r[k.key])).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...values, 1))), hi = Math.ceil(Math.log10(Math.max(...values, 1e-12)));
  const span = Math.max(hi - lo, 1);
  const x = (i) => L + (rows.length > 1 ? (i / (rows.length - 1)) * (W - L - 10) : 0);
  const y = (v) => T + (1 - (Math.log10(v) - lo) / span) * (H - T - B);
  const svg = el("svg", { width: W + 150, height: H, class: "plot curves", id });
  svg.appendChild(el("text", { x: 0, y: 12, "font-weight": 600 }, title));
  svg.appendChild(el("line", { x1: L, y1: H - B, x2: W, y2: H - B, class: "axis" }));
  svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  for (let p = lo; p <= hi; p++) svg.appendChild(el("text", { x: 4, y: y(10 ** p) + 4 }, `1e${p}`));
  svg.appendChild(el("text", { x: L, y: H - 8 }, "layer (graph order) →"));
  keys.forEach((k, n) => {
    const pts = rows.map((r, i) => (r[k.key] > 0 ? `${x(i)},${y(r[k.key])}` : null)).filter(Boolean);
    svg.appendChild(el("polyline", { points: pts.join(" "), fill: "none", stroke: k.color, "stroke-width": 2 }));
    rows.forEach((r, i) => {
      if (!(r[k.key] > 0)) return;
      const dot = el("circle", { cx: x(i), cy: y(r[k.key]), r: 3, fill: k.color });
      dot.appendChild(el("title", {}, `${r.id} ${r.layer}: ${r[k.key].toExponential(3)}`));
      svg.appendChild(dot);
    });
    svg.appendChild(el("text", { x: W + 8, y: T + 14 * n + 10, fill: k.color }, k.label));
  });
  return svg;
}

export function accuracyView(host, rows) {
  host.innerHTML = "";
  const wrap = document.createElement("div");
  wrap.className = "plots";
  wrap.appendChild(curves("cosine distance to float per layer", rows,
    [{ key: "cosine_distance", label: "accumulated", color: "#c62828" },
     { key: "cosine_distance_isolated", label: "layer alone", color: "#3f6fb5" }], "cosine-chart"));
  wrap.appendChild(curves("euclidean distance to float per layer", rows,
    [{ key: "euclidean", label: "accumulated", color: "#c62828" },
     { key: "euclidean_isolated", label: "layer alone", color: "#3f6fb5" }], "euclidean-chart"));
  const exp = (v) => v.toExponential(4);
  const t = table([{ key: "id", label: "id" }, { key: "layer", label: "layer", text: true }, { key: "op", label: "op", text: true },
                   { key: "cosine_distance", label: "cos dist", format: exp }, { key: "euclidean", label: "euclidean", format: exp },
                   { key: "cosine_distance_isolated", label: "cos (alone)", format: exp },
                   { key: "euclidean_isolated", label: "euclid (alone)", format: exp },
                   { key: "quantized", label: "quantized", format: (v) => (v ? "yes" : "float") }], rows);
  t.id = "accuracy-table";
  wrap.appendChild(t);
  host.appendChild(wrap);
}

export function compareView(host, data) {
  host.innerHTML = "";
  const p = document.createElement("p");
  p.textContent = `A = ${data.a} · B = ${data.b} · total modelled time A ${data.total.time_a ?? "?"} µs, B ${data.total.time_b ?? "?"} µs`;
  host.appendChild(p);
  const exp = (v) => v.toExponential(3);
  const wrap = document.createElement("div");
  wrap.className = "plots";
  const t = table([{ key: "layer", label: "layer", text: true }, { key: "time_a", label: "time A (µs)" },
                   { key: "time_b", label: "time B (µs)" }, { key: "cosine_a", label: "cos dist A", format: exp },
                   { key: "cosine_b", label: "cos dist B", format: exp }], data.rows);
  t.id = "compare-table";
  wrap.appendChild(t);
  const colors = ["#3f6fb5", "#e08a00"];
  wrap.appendChild(bars("modelled time (µs): A blue, B orange", data.rows.filter((r) => r.time_a !== null || r.time_b !== null)
    .map((r) => ({ label: r.layer, values: [r.time_a, r.time_b], colors })), " µs"));
  wrap.appendChild(bars("cosine distance: A blue, B orange", data.rows.filter((r) => r.cosine_a !== null || r.cosine_b !== null)
    .map((r) => ({ label: r.layer, values: [r.cosine_a, r.cosine_b], colors })), ""));
  host.appendChild(wrap);
}
