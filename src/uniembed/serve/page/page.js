// The page: pick a collection, search it, see its map, read the evaluation charts.
// Plain ES modules, no framework and no build step: every call goes to the REST API.
import { MapView } from "/page/map.js";
import { drawChart } from "/page/chart.js";

const $ = (id) => document.getElementById(id);
const state = { collection: null, info: null, image: null, lastHits: [], charts: [] };

// -- the API ----------------------------------------------------------------------------------------
export class ApiError extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem("uniembed-key");
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { ...options, headers, body: options.body && JSON.stringify(options.body) });
  } catch (err) {
    throw new ApiError(`the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: said below */ }
  if (!response.ok) {
    const message = data && data.error && data.error.message ? data.error.message : `HTTP ${response.status}`;
    if (response.status === 401) $("api-key").focus();
    throw new ApiError(message);
  }
  return data;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err instanceof ApiError ? err.message : `unexpected error: ${err}`;
  box.hidden = false;
}

async function guarded(work) {
  try { showError(null); return await work(); } catch (err) { showError(err); return undefined; }
}

// -- collections ------------------------------------------------------------------------------------
async function loadCollections() {
  const select = $("collection");
  let names = [];
  try {
    names = (await api("/v1/collections")).collections;
  } catch (err) {
    select.replaceChildren(new Option("(no collections API)", ""));
    throw err;
  }
  const previous = state.collection;
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  if (!names.length) { select.append(new Option("(no collections)", "")); $("collection-info").textContent = ""; }
  if (names.includes(previous)) select.value = previous;
  await chooseCollection(select.value || null);
}

function bytesText(n) { return n == null ? "-" : `${Math.round(n * 10) / 10} B/vector`; }

async function chooseCollection(name) {
  state.collection = name;
  state.info = null;
  state.lastHits = [];
  $("hits").replaceChildren();
  $("search-status").textContent = "";
  mapView.clear();
  if (!name) return;
  const info = await api(`/v1/collections/${encodeURIComponent(name)}`);
  state.info = info;
  $("collection-info").textContent =
    `${info.count} items · model ${info.model || "none (vectors only)"} · index ${info.index}` +
    `${info.quantize && info.quantize !== "none" ? " + " + info.quantize : ""} · ${bytesText(info.bytes_per_vector)}`;
  $("image-row").hidden = !info.images;
  const colorBy = $("color-by");
  colorBy.replaceChildren(new Option("(none)", ""), ...Object.keys(info.payload_fields || {}).map((f) => new Option(f, f)));
  if (selectedTab() === "map") await drawMap();
}

// -- search -----------------------------------------------------------------------------------------
function parseFilter(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  if (trimmed.startsWith("{")) {
    try { return JSON.parse(trimmed); } catch { throw new ApiError(`the filter is not valid JSON: ${trimmed}`); }
  }
  return trimmed;
}

async function search() {
  if (!state.collection) throw new ApiError("pick a collection first");
  const query = $("query").value.trim();
  const body = { k: Number($("k").value) || 10, mode: $("mode").value, with_items: true };
  if (query) body.query = query;
  if (state.image) body.image = state.image;
  if (!query && !state.image) throw new ApiError("type a query (or drop an image on an image collection)");
  const filter = parseFilter($("filter").value);
  if (filter !== undefined) body.filter = filter;
  $("search-status").textContent = "searching…";
  const started = performance.now();
  let result;
  try {
    result = await api(`/v1/collections/${encodeURIComponent(state.collection)}/search`, { method: "POST", body });
  } catch (err) {
    $("search-status").textContent = "";
    throw err;
  }
  state.lastHits = result.hits;
  renderHits(result.hits);
  $("search-status").textContent = `${result.hits.length} hits in ${Math.round(performance.now() - started)} ms`;
  mapView.highlight(result.hits.map((h) => h.id));
}

function renderHits(hits) {
  const list = $("hits");
  list.replaceChildren(...hits.map((hit) => {
    const li = document.createElement("li");
    li.className = "hit";
    const head = document.createElement("div");
    head.className = "hit-head";
    const id = document.createElement("span");
    id.className = "hit-id";
    id.textContent = hit.id;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `score ${hit.score.toFixed(4)}`;
    head.append(id, score);
    li.append(head);
    if (hit.image) {
      const img = document.createElement("img");
      img.src = hit.image;
      img.alt = hit.text ? `image of ${hit.id}: ${hit.text}` : `image of ${hit.id}`;
      li.append(img);
    } else if (hit.image_path) {
      const p = document.createElement("p");
      p.textContent = `image: ${hit.image_path}`;
      li.append(p);
    }
    if (hit.text) {
      const p = document.createElement("p");
      p.className = "hit-text";
      p.textContent = hit.text.length > 600 ? hit.text.slice(0, 600) + "…" : hit.text;
      li.append(p);
    }
    if (hit.payload && Object.keys(hit.payload).length) {
      const pre = document.createElement("pre");
      pre.className = "payload";
      pre.textContent = JSON.stringify(hit.payload, null, 1);
      li.append(pre);
    }
    return li;
  }));
}

function readImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) { showError(new ApiError(`${file.name} is not an image`)); return; }
  const reader = new FileReader();
  reader.onload = () => { state.image = reader.result; $("drop").textContent = `image: ${file.name}`; };
  reader.readAsDataURL(file);
}

// -- the map ----------------------------------------------------------------------------------------
const mapView = new MapView($("map"), $("tooltip"), $("legend"), async (id) => {
  const item = await api(`/v1/collections/${encodeURIComponent(state.collection)}/items/${encodeURIComponent(id)}`);
  return item.text || item.image_path || "";
});

async function drawMap() {
  if (!state.collection) { $("map-status").textContent = "pick a collection"; return; }
  const params = new URLSearchParams({ method: $("method").value });
  if ($("color-by").value) params.set("color_by", $("color-by").value);
  $("map-status").textContent = "computing the map (once per collection version)…";
  let map;
  try {
    map = await api(`/v1/collections/${encodeURIComponent(state.collection)}/map?${params}`);
  } catch (err) {
    $("map-status").textContent = "";
    throw err;
  }
  if (!map.total) {
    mapView.clear();
    $("map-status").textContent = "this collection is empty: nothing to draw";
    return;
  }
  mapView.show(map);
  const shown = mapView.highlight(state.lastHits.map((h) => h.id));
  const hitsNote = state.lastHits.length ? ` · ${shown} of the last search's ${state.lastHits.length} hits on the map, ringed` : "";
  $("map-status").textContent = `${map.ids.length} of ${map.total} items` +
    `${map.sampled ? " (a stable sample: the items whose id hashes lowest)" : ""} · ${map.method.toUpperCase()} · version ${map.version}` +
    hitsNote;
}

// -- evaluation -------------------------------------------------------------------------------------
async function loadResults() {
  const data = await api("/v1/results");
  state.charts = data.charts;
  const select = $("chart-select");
  select.replaceChildren(...data.charts.map((c, i) => new Option(`${c.bench}: ${c.y} vs ${c.x} (${c.table})`, String(i))));
  $("eval-status").textContent = data.charts.length || data.results.length
    ? `${data.charts.length} charts, ${data.results.length} results` +
      (data.skipped.length ? ` · ${data.skipped.length} files skipped: ${data.skipped.map((s) => s.file).join(", ")}` : "")
    : "no results found: run `uniembed eval` (writes ./results) or start the server with --results DIR";
  renderChart();
  const body = $("results-table").tBodies[0];
  body.replaceChildren(...data.results.map((r) => {
    const tr = document.createElement("tr");
    for (const [value, numeric] of [[r.model, false], [r.task, false], [r.split, false], [r.main_score.toFixed(2), true]]) {
      const td = document.createElement("td");
      td.textContent = value;
      if (numeric) td.className = "num";
      tr.append(td);
    }
    return tr;
  }));
}

function renderChart() {
  const chart = state.charts[Number($("chart-select").value)];
  drawChart($("chart"), chart);
  $("chart-caption").textContent = chart
    ? `${chart.table} — ${chart.y} against ${chart.x}, from ${chart.file}${chart.date ? ", " + chart.date : ""}`
    : "";
}

// -- tabs -------------------------------------------------------------------------------------------
const TABS = ["search", "map", "eval"];
function selectedTab() { return TABS.find((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true"); }

async function selectTab(name) {
  for (const t of TABS) {
    const on = t === name;
    $(`tab-${t}`).setAttribute("aria-selected", String(on));
    $(`tab-${t}`).tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
  }
  if (name === "map") await guarded(drawMap);
  if (name === "eval") await guarded(loadResults);
}

// -- wiring -----------------------------------------------------------------------------------------
function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("uniembed-key", $("api-key").value);
    guarded(loadCollections);
  });
  $("collection").addEventListener("change", () => guarded(() => chooseCollection($("collection").value || null)));
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); guarded(search); });
  $("image").addEventListener("change", () => readImage($("image").files[0]));
  $("clear-image").addEventListener("click", () => { state.image = null; $("image").value = ""; $("drop").textContent = "or drop an image here"; });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); readImage(event.dataTransfer.files[0]); });
  for (const t of TABS) $(`tab-${t}`).addEventListener("click", () => selectTab(t));
  document.querySelector("[role=tablist]").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = TABS[(TABS.indexOf(selectedTab()) + step + TABS.length) % TABS.length];
    selectTab(next);
    $(`tab-${next}`).focus();
  });
  $("method").addEventListener("change", () => guarded(drawMap));
  $("color-by").addEventListener("change", () => guarded(drawMap));
  $("zoom-in").addEventListener("click", () => mapView.zoomBy(1.5));
  $("zoom-out").addEventListener("click", () => mapView.zoomBy(1 / 1.5));
  $("zoom-reset").addEventListener("click", () => mapView.resetView());
  $("chart-select").addEventListener("change", renderChart);
  $("api-key").value = sessionStorage.getItem("uniembed-key") || "";
}

wire();
guarded(loadCollections).then(() => document.body.setAttribute("data-ready", "true"));
