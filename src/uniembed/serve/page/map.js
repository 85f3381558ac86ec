// The map: up to ~20,000 points drawn on one canvas (never one DOM node per point), with
// zoom (wheel, +/-), pan (drag), hover (nearest point within a few pixels, found on a grid) and
// the last search's hits ringed.
const PALETTE = ["#0b5cad", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7a8a", "#cf222e", "#57606a",
                 "#e16f24", "#6e40c9", "#2da44e", "#953800"];
const OTHER = "#8c959f";
const HOVER_PX = 6;

export class MapView {
  constructor(canvas, tooltip, legend, fetchText) {
    this.canvas = canvas;
    this.tooltip = tooltip;
    this.legend = legend;
    this.fetchText = fetchText;
    this.map = null;
    this.hits = new Set();
    this.resetView();
    this.texts = new Map();
    canvas.tabIndex = 0;
    canvas.addEventListener("wheel", (e) => { e.preventDefault(); this.zoomBy(e.deltaY < 0 ? 1.2 : 1 / 1.2, this.mouse(e)); });
    canvas.addEventListener("mousedown", (e) => { this.drag = { x: e.clientX, y: e.clientY }; canvas.classList.add("dragging"); });
    window.addEventListener("mouseup", () => { this.drag = null; canvas.classList.remove("dragging"); });
    canvas.addEventListener("mousemove", (e) => this.onMove(e));
    canvas.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    canvas.addEventListener("keydown", (e) => {
      const pan = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] }[e.key];
      if (pan) { e.preventDefault(); this.offset.x += pan[0]; this.offset.y += pan[1]; this.draw(); }
      if (e.key === "+" || e.key === "=") this.zoomBy(1.5);
      if (e.key === "-") this.zoomBy(1 / 1.5);
    });
  }

  resetView() { this.scale = 1; this.offset = { x: 0, y: 0 }; this.draw(); }

  clear() { this.map = null; this.hits = new Set(); this.legend.replaceChildren(); this.tooltip.hidden = true; this.draw(); }

  show(map) {
    this.map = map;
    this.texts = new Map();
    this.colors = this.colorsOf(map);
    this.index = this.buildGrid(map.points);
    this.canvas.setAttribute("data-points", String(map.points.length));
    this.draw();
  }

  highlight(ids) {
    this.hits = new Set(ids);
    const shown = this.map ? this.map.ids.filter((id) => this.hits.has(id)).length : 0;
    this.canvas.setAttribute("data-highlighted", String(shown));
    this.draw();
    return shown;
  }

  colorsOf(map) {
    this.legend.replaceChildren();
    if (!map.colors) return null;
    const counts = new Map();
    for (const value of map.colors) counts.set(String(value), (counts.get(String(value)) || 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length).map(([v]) => v);
    const colorOf = new Map(top.map((v, i) => [v, PALETTE[i]]));
    for (const [value, color] of [...colorOf.entries(), ...(counts.size > top.length ? [["other values", OTHER]] : [])]) {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      li.append(swatch, `${map.color_by} = ${value}`);
      this.legend.append(li);
    }
    return map.colors.map((v) => colorOf.get(String(v)) || OTHER);
  }

  // canvas pixels of a point in [-1, 1]
  toPixel(point) {
    const { width, height } = this.canvas;
    const half = Math.min(width, height) / 2 * 0.92;
    return [width / 2 + this.offset.x + point[0] * half * this.scale, height / 2 + this.offset.y - point[1] * half * this.scale];
  }

  buildGrid(points) {  // map units -> cells of 0.05, for hover look-ups in O(1)
    const grid = new Map();
    points.forEach((p, i) => {
      const key = `${Math.floor(p[0] * 20)},${Math.floor(p[1] * 20)}`;
      if (!grid.has(key)) grid.set(key, []);
      grid.get(key).push(i);
    });
    return grid;
  }

  mouse(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [(e.clientX - rect.left) * this.canvas.width / rect.width, (e.clientY - rect.top) * this.canvas.height / rect.height];
  }

  zoomBy(factor, at) {
    const [cx, cy] = at || [this.canvas.width / 2, this.canvas.height / 2];
    // keep the point under the cursor where it is
    this.offset.x = (this.offset.x + this.canvas.width / 2 - cx) * factor + cx - this.canvas.width / 2;
    this.offset.y = (this.offset.y + this.canvas.height / 2 - cy) * factor + cy - this.canvas.height / 2;
    this.scale *= factor;
    this.draw();
  }

  nearest(px, py) {
    if (!this.map) return -1;
    const { width, height } = this.canvas;
    const half = Math.min(width, height) / 2 * 0.92 * this.scale;
    const mx = (px - width / 2 - this.offset.x) / half;
    const my = -(py - height / 2 - this.offset.y) / half;
    const reach = HOVER_PX / half;
    let best = -1, bestDistance = Infinity;
    for (let gx = Math.floor((mx - reach) * 20); gx <= Math.floor((mx + reach) * 20); gx++) {
      for (let gy = Math.floor((my - reach) * 20); gy <= Math.floor((my + reach) * 20); gy++) {
        for (const i of this.index.get(`${gx},${gy}`) || []) {
          const [x, y] = this.toPixel(this.map.points[i]);
          const d = Math.hypot(x - px, y - py);
          if (d < bestDistance && d <= HOVER_PX) { best = i; bestDistance = d; }
        }
      }
    }
    return best;
  }

  async onMove(e) {
    if (this.drag) {
      this.offset.x += e.clientX - this.drag.x;
      this.offset.y += e.clientY - this.drag.y;
      this.drag = { x: e.clientX, y: e.clientY };
      this.draw();
      return;
    }
    const [px, py] = this.mouse(e);
    const i = this.nearest(px, py);
    if (i < 0) { this.tooltip.hidden = true; this.hovered = null; return; }
    const id = this.map.ids[i];
    this.hovered = id;
    const colour = this.map.colors ? ` · ${this.map.color_by} = ${this.map.colors[i]}` : "";
    this.tooltip.textContent = `${id}${colour}`;
    const rect = this.canvas.getBoundingClientRect();
    this.tooltip.style.left = `${(px * rect.width / this.canvas.width) + 12}px`;
    this.tooltip.style.top = `${(py * rect.height / this.canvas.height) + 12}px`;
    this.tooltip.hidden = false;
    if (!this.texts.has(id)) {
      this.texts.set(id, "");
      try { this.texts.set(id, await this.fetchText(id)); } catch { this.texts.set(id, "(could not read the item)"); }
    }
    if (this.hovered === id && this.texts.get(id)) {
      const text = this.texts.get(id);
      this.tooltip.textContent = `${id}${colour}\n${text.length > 200 ? text.slice(0, 200) + "…" : text}`;
    }
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.map) return;
    const radius = Math.max(3, Math.min(6, 3 * Math.sqrt(this.scale)));
    const points = this.map.points;
    for (let i = 0; i < points.length; i++) {
      const [x, y] = this.toPixel(points[i]);
      ctx.fillStyle = this.colors ? this.colors[i] : PALETTE[0];
      ctx.globalAlpha = this.hits.size ? 0.55 : 0.85;
      ctx.fillRect(x - radius / 2, y - radius / 2, radius, radius);
    }
    ctx.globalAlpha = 1;
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#d1242f";
    points.forEach((p, i) => {
      if (!this.hits.has(this.map.ids[i])) return;
      const [x, y] = this.toPixel(p);
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, 2 * Math.PI);
      ctx.stroke();
    });
  }
}
