// The search page: one query (an uploaded crop or an indexed item), its ranked matches, and a trail of the
// matches followed. Talks to the JSON API of the same server only; no library, no build step.
"use strict";

const state = { query: null, threshold: null, trail: [], gallerySize: null };
const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (ignored) {
    body = null;
  }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status} ${response.statusText}`);
  }
  return body;
}

function showMessage(text, kind) {
  const box = $("message");
  box.textContent = text || "";
  box.className = `message ${kind || ""}`;
  box.hidden = !text;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadHealth() {
  try {
    const health = await api("/api/health");
    state.threshold = health.threshold;
    state.gallerySize = health.gallery_size;
    $("gallery-info").textContent =
      `${health.gallery_size.toLocaleString("en")} crops · model ${health.model} (${health.feature_dim}-d)`;
    $("threshold-info").textContent = health.threshold === null
      ? "This model carries no calibrated same-person threshold; matches are ranked by score alone."
      : `Same-person threshold ${health.threshold.toFixed(3)} (${health.threshold_source === "given"
        ? "set when the server started" : "calibrated at a false-match rate of 1 in 1000"}).`;
    if (health.gallery_size === 0) {
      showMessage("The gallery is empty: there is nobody to search yet. Index crops with " +
        "`reidkit index --db … --images …`, then reload this page.", "empty");
    }
  } catch (error) {
    $("gallery-info").textContent = "server not reachable";
    showMessage(error.message, "error");
  }
}

function cameraList(text) {
  return text.split(/[\s,]+/).filter((part) => part.length > 0);
}

function addFilters(form) {
  form.append("topk", $("topk").value || "30");
  cameraList($("camera").value).forEach((camera) => form.append("camera", camera));
  cameraList($("exclude-camera").value).forEach((camera) => form.append("exclude_camera", camera));
  if ($("exclude-same").checked) form.append("exclude_same_camera", "true");
  if ($("since").value) form.append("since", $("since").value);
  if ($("until").value) form.append("until", $("until").value);
}

async function search() {
  if (!state.query) return;
  const form = new FormData();
  if (state.query.kind === "upload") form.append("image", state.query.file);
  else form.append("item_id", state.query.id);
  addFilters(form);
  document.body.classList.add("busy");
  try {
    const result = await api("/api/search", { method: "POST", body: form });
    showMessage("");
    render(result);
  } catch (error) {
    $("results").replaceChildren();
    $("summary").textContent = "";
    const prefix = state.query.kind === "upload" ? "The image could not be searched: " : "";
    showMessage(prefix + error.message, "error");
  } finally {
    document.body.classList.remove("busy");
  }
}

function thresholdLine(text) {
  const line = element("div", "threshold");
  line.append(element("span", "", text));
  return line;
}

function hitCard(hit, rank) {
  const card = element("button", `hit${hit.same_person ? " same" : ""}`);
  card.type = "button";
  card.title = `${hit.path}\nscore ${hit.score.toFixed(4)} — click to search with this crop`;
  const image = element("img");
  image.src = hit.image;
  image.alt = `match ${rank}: ${hit.path}`;
  image.loading = "lazy";
  image.addEventListener("error", () => card.classList.add("missing"), { once: true });
  const camera = hit.camera === null ? "cam ?" : `cam ${hit.camera}`;
  const time = hit.time_text ? hit.time_text.replace(" UTC", "").slice(5, 16) : "no time";
  card.append(image, element("span", "rank", `${rank}`), element("span", "score", hit.score.toFixed(3)),
    element("span", "meta", camera), element("span", "meta", time));
  card.addEventListener("click", () => followItem(hit));
  return card;
}

function render(result) {
  const results = $("results");
  const hits = result.hits;
  results.replaceChildren();
  const what = state.query.kind === "upload" ? "the uploaded crop" : `item ${state.query.label}`;
  $("summary").textContent = hits.length
    ? `${hits.length} best of ${result.gallery_size.toLocaleString("en")} crops for ${what} · ` +
      "click a match to follow that person"
    : "";
  if (!hits.length) {
    showMessage("No crop passes these filters: widen the cameras or the time range.", "empty");
    return;
  }
  const threshold = result.threshold;
  let lineDrawn = threshold === null;
  if (!lineDrawn && hits[0].score <= threshold) {
    results.append(thresholdLine(`no match above the same-person threshold ${threshold.toFixed(3)}`));
    lineDrawn = true;
  }
  hits.forEach((hit, index) => {
    if (!lineDrawn && hit.score <= threshold) {
      results.append(thresholdLine(`same-person threshold ${threshold.toFixed(3)}: above it, likely the same person`));
      lineDrawn = true;
    }
    results.append(hitCard(hit, index + 1));
  });
  if (!lineDrawn) results.append(thresholdLine(`all shown matches are above the threshold ${threshold.toFixed(3)}`));
}

function setQueryPicture(src, label) {
  const picture = $("query-image");
  picture.src = src;
  picture.hidden = false;
  $("drop-text").hidden = true;
  $("drop-text").replaceChildren("Drop a person crop here", document.createElement("br"), "or choose a file");
  $("query-label").textContent = label;
  $("apply").disabled = false;
}

function useFile(file) {
  if (!file) return;
  state.query = { kind: "upload", file, label: file.name };
  state.trail = [state.query];
  // A file the browser cannot show gets a note in the drop box; the server's answer says what is wrong with it.
  $("query-image").onerror = () => {
    $("query-image").hidden = true;
    $("drop-text").hidden = false;
    $("drop-text").textContent = `${file.name}: no preview (not an image?)`;
  };
  setQueryPicture(URL.createObjectURL(file), `${file.name} (${Math.ceil(file.size / 1024)} KB)`);
  renderTrail();
  search();
}

function followItem(hit) {
  state.query = { kind: "item", id: hit.id_str, image: hit.image, label: `#${hit.id_str}` };
  const at = state.trail.findIndex((step) => step.kind === "item" && step.id === hit.id_str);
  state.trail = at >= 0 ? state.trail.slice(0, at + 1) : [...state.trail, state.query];
  $("query-image").onerror = null;
  $("file").value = "";  // the chooser no longer names the query (and the same file can be chosen again)
  const camera = hit.camera === null ? "?" : hit.camera;
  setQueryPicture(hit.image, `${hit.path} · cam ${camera} · ${hit.time_text || "no time"}`);
  renderTrail();
  search();
}

function renderTrail() {
  const trail = $("trail");
  trail.replaceChildren();
  state.trail.forEach((step, index) => {
    if (index) trail.append(element("span", "arrow", "→"));
    const link = element("button", "step", step.kind === "upload" ? step.file.name : step.label);
    link.type = "button";
    link.disabled = step === state.query;
    link.addEventListener("click", () => {
      state.trail = state.trail.slice(0, index + 1);
      state.query = step;
      if (step.kind === "upload") setQueryPicture(URL.createObjectURL(step.file), step.label);
      else setQueryPicture(step.image, step.label);
      renderTrail();
      search();
    });
    trail.append(link);
  });
}

function setUp() {
  $("file").addEventListener("change", (event) => useFile(event.target.files[0]));
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    useFile(event.dataTransfer.files[0]);
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  loadHealth();
}

document.addEventListener("DOMContentLoaded", setUp);
