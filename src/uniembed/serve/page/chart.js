// One quality-against-cost scatter chart as SVG (a few dozen points: SVG keeps them readable and
// each point's <title> is read by screen readers), plus the same numbers as a table.
const NS = "http://www.w3.org/2000/svg";
const W = 720, H = 420, M = { left: 70, right: 20, top: 20, bottom: 55 };

function el(name, attributes = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(low, high, count = 5) {
  if (low === high) return [low];
  const step = Math.pow(10, Math.floor(Math.log10((high - low) / count)));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (high - low) / s <= count) || step * 10;
  const out = [];
  for (let t = Math.ceil(low / nice) * nice; t <= high + 1e-9; t += nice) out.push(Number(t.toPrecision(12)));
  return out;
}

export function drawChart(container, chart) {
  container.replaceChildren();
  if (!chart) return;
  const xs = chart.points.map((p) => p.x), ys = chart.points.map((p) => p.y);
  const pad = (lo, hi) => (hi - lo || Math.abs(hi) || 1) * 0.08;
  const [x0, x1] = [Math.min(...xs) - pad(Math.min(...xs), Math.max(...xs)), Math.max(...xs) + pad(Math.min(...xs), Math.max(...xs))];
  const [y0, y1] = [Math.min(...ys) - pad(Math.min(...ys), Math.max(...ys)), Math.max(...ys) + pad(Math.min(...ys), Math.max(...ys))];
  const sx = (x) => M.left + (x - x0) / (x1 - x0) * (W - M.left - M.right);
  const sy = (y) => H - M.bottom - (y - y0) / (y1 - y0) * (H - M.top - M.bottom);
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
                          "aria-label": `${chart.y} against ${chart.x}: ${chart.points.length} points` });
  svg.append(el("title", {}, `${chart.y} against ${chart.x}`));
  const axes = el("g", { stroke: "#57606a" });
  axes.append(el("line", { x1: M.left, y1: H - M.bottom, x2: W - M.right, y2: H - M.bottom }),
              el("line", { x1: M.left, y1: M.top, x2: M.left, y2: H - M.bottom }));
  svg.append(axes);
  for (const t of ticks(x0, x1)) {
    svg.append(el("line", { x1: sx(t), y1: H - M.bottom, x2: sx(t), y2: H - M.bottom + 5, stroke: "#57606a" }),
               el("text", { x: sx(t), y: H - M.bottom + 18, "text-anchor": "middle" }, String(t)));
  }
  for (const t of ticks(y0, y1)) {
    svg.append(el("line", { x1: M.left - 5, y1: sy(t), x2: M.left, y2: sy(t), stroke: "#57606a" }),
               el("text", { x: M.left - 8, y: sy(t) + 4, "text-anchor": "end" }, String(t)));
  }
  svg.append(el("text", { x: (M.left + W - M.right) / 2, y: H - 12, "text-anchor": "middle" }, chart.x),
             el("text", { x: 16, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
                          transform: `rotate(-90 16 ${(M.top + H - M.bottom) / 2})` }, chart.y));
  for (const p of chart.points) {
    const g = el("g", { class: "point" });
    g.append(el("title", {}, `${p.label}: ${chart.y} ${p.y}, ${chart.x} ${p.x}`),
             el("circle", { cx: sx(p.x), cy: sy(p.y), r: 5, fill: "#0b5cad", "fill-opacity": 0.8 }));
    if (chart.points.length <= 14) {
      g.append(el("text", { x: sx(p.x) + 7, y: sy(p.y) - 6 }, p.label.length > 28 ? p.label.slice(0, 27) + "…" : p.label));
    }
    svg.append(g);
  }
  container.append(svg);
  const table = document.createElement("table");
  table.className = "chart-table";
  const caption = document.createElement("caption");
  caption.textContent = "The chart's numbers";
  const head = table.createTHead().insertRow();
  for (const name of ["", chart.y, chart.x]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name || "row";
    head.append(th);
  }
  const body = table.createTBody();
  for (const p of chart.points) {
    const row = body.insertRow();
    for (const value of [p.label, p.y, p.x]) row.insertCell().textContent = String(value);
  }
  table.prepend(caption);
  container.append(table);
}
