// The model graph as SVG: positions come from the server's layered layout; colours from an overlay.
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// white -> amber -> red for t in [0, 1]
export function heat(t) {
  t = Math.max(0, Math.min(1, t));
  const stops = [[255, 255, 255], [255, 193, 7], [198, 40, 40]];
  const [a, b, u] = t < 0.5 ? [stops[0], stops[1], t * 2] : [stops[1], stops[2], (t - 0.5) * 2];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// overlay name -> {value(node) -> number|null, scale(v) -> [0,1], text(v), label}
export function overlayOf(graph, name) {
  const time = graph.overlays?.time || {}, error = graph.overlays?.error || {};
  if (name === "time") {
    const values = Object.values(time).map((o) => o.time);
    const max = Math.max(1e-9, ...values);
    return { label: "modelled µs", value: (n) => time[n.id]?.time ?? null, scale: (v) => v / max,
             text: (v) => `${v} µs`, min: 0, max, empty: "run eval_perf first" };
  }
  if (name === "error") {
    const values = Object.values(error).map((r) => r.cosine_distance).filter((v) => v > 0);
    const lo = Math.log10(Math.min(...values, 1)), hi = Math.log10(Math.max(...values, 1e-12));
    const span = Math.max(hi - lo, 1e-9);
    return { label: "cosine distance (log)", value: (n) => error[n.id]?.cosine_distance ?? null,
             scale: (v) => (v > 0 ? (Math.log10(v) - lo) / span : 0), text: (v) => v.toExponential(3),
             min: values.length ? 10 ** lo : 0, max: values.length ? 10 ** hi : 0, empty: "run accuracy_analysis first" };
  }
  if (name === "fallback") {
    return { label: "runs on the CPU", value: (n) => (n.fallback ? 1 : 0), scale: (v) => v, text: (v) => (v ? "CPU" : "NPU"),
             min: "NPU", max: "CPU" };
  }
  return null;
}

export function drawGraph(host, graph, overlayName, selected, handlers) {
  host.innerHTML = "";
  const zoom = handlers.zoom || 1;
  const svg = el("svg", { width: graph.width * zoom, height: graph.height * zoom, viewBox: `0 0 ${graph.width} ${graph.height}`,
                          id: "graph-svg" });
  const w = graph.node_w, h = graph.node_h;
  const at = {};
  graph.nodes.forEach((n) => (at[n.id] = n));
  graph.inputs.forEach((i) => (at[`input:${i.index}`] = i));
  const edges = el("g", { class: "edges" });
  for (const e of graph.edges) {
    const a = at[e.from], b = at[e.to];
    const x1 = a.x + w / 2, y1 = a.y + h, x2 = b.x + w / 2, y2 = b.y, my = (y1 + y2) / 2;
    const path = el("path", { class: "edge", d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}` });
    path.appendChild(el("title", {}, e.tensor));
    edges.appendChild(path);
  }
  svg.appendChild(edges);
  for (const i of graph.inputs) {
    const g = el("g", { class: "input", transform: `translate(${i.x},${i.y})` });
    g.appendChild(el("rect", { width: w, height: h }));
    g.appendChild(el("text", { x: 8, y: 16, class: "op" }, `input ${i.name}`));
    g.appendChild(el("text", { x: 8, y: 31 }, `${JSON.stringify(i.shape)} ${i.dtype}`));
    svg.appendChild(g);
  }
  const overlay = overlayOf(graph, overlayName);
  for (const n of graph.nodes) {
    const v = overlay ? overlay.value(n) : null;
    const cls = ["node", n.float ? "float" : "", selected.has(n.name) ? "selected" : ""].join(" ");
    const g = el("g", { class: cls, transform: `translate(${n.x},${n.y})`, "data-name": n.name, "data-id": n.id });
    g.appendChild(el("rect", { width: w, height: h, fill: v === null || !overlay ? "#ffffff" : heat(overlay.scale(v)) }));
    g.appendChild(el("text", { x: 8, y: 16, class: "op" }, `${n.id} ${n.op}`.slice(0, 26)));
    g.appendChild(el("text", { x: 8, y: 31 }, (v !== null && overlay ? `${overlay.text(v)} ` : "") + n.name.slice(0, 22)));
    g.addEventListener("mouseenter", () => handlers.hover(n));
    g.addEventListener("click", () => handlers.click(n));
    svg.appendChild(g);
  }
  host.appendChild(svg);
  return overlay;
}

function quantText(q) {
  if (!q) return "float";
  const more = q.channels > q.scale.length ? ` … (${q.channels} channels)` : "";
  return `${q.qtype} ${q.scheme} scale ${q.scale.map((s) => s.toPrecision(5)).join(", ")}${more} zp ${q.zero_point.join(", ")}` +
         (q.min !== null && q.min !== undefined ? ` range [${q.min.toPrecision(5)}, ${q.max.toPrecision(5)}]` : "");
}

export function layerDetails(graph, n) {
  const rows = [["layer", `${n.id} ${n.name}`], ["op", n.op]];
  const time = graph.overlays?.time?.[n.id], error = graph.overlays?.error?.[n.id];
  if (time) rows.push(["modelled time", `${time.time} µs (${time.operation}, ${time.bound}, ${time.device})${time.fused ? " fused into layer " + time.layer : ""}`]);
  if (error) rows.push(["cosine distance", `${error.cosine_distance?.toExponential(4)} (alone ${error.cosine_distance_isolated?.toExponential(4)})`],
                       ["euclidean", `${error.euclidean?.toExponential(4)} (alone ${error.euclidean_isolated?.toExponential(4)})`]);
  if (n.fallback) rows.push(["CPU fallback", n.fallback]);
  if (n.float) rows.push(["computes in", "float (hybrid)"]);
  for (const t of n.inputs) rows.push([`in ${t.const ? "(const) " : ""}${t.name}`, `${JSON.stringify(t.shape)} ${t.dtype} ${t.layout || ""} · ${quantText(t.quant)}`]);
  for (const t of n.outputs) rows.push([`out ${t.name}`, `${JSON.stringify(t.shape)} ${t.dtype} ${t.layout || ""} · ${quantText(t.quant)}`]);
  for (const [k, v] of Object.entries(n.attrs)) rows.push([`attr ${k}`, v]);
  const table = document.createElement("table");
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  return table;
}
