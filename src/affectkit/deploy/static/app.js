// affectkit web page: upload a video to POST /predict, then show the label, the class
// probabilities and the emotion over time (SVG). Plain JavaScript, no libraries, nothing external.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const el = {
    file: $("file"), drop: $("drop"), filename: $("filename"), progress: $("progress"),
    progressBar: $("progress-bar"), status: $("status"), error: $("error"), preview: $("preview"),
    limits: $("limits"), model: $("model"), result: $("result"), placeholder: $("placeholder"),
    label: $("label"), confidence: $("confidence"), sentiment: $("sentiment"), details: $("details"),
    probabilities: $("probabilities"), curve: $("curve"), curveKind: $("curve-kind"), legend: $("legend"),
    words: $("words"), wordsNote: $("words-note"), wordsBody: document.querySelector("#words-table tbody"),
  };

  // Colours: a fixed one for the usual emotion names, otherwise from a palette by class index.
  const NAMED = {
    anger: "#e5484d", joy: "#f5a524", sadness: "#3e63dd", surprise: "#8e4ec6", fear: "#12a594",
    trust: "#30a46c", disgust: "#7c8b2e", anticipation: "#f76b15", neutral: "#8b8d98",
    happiness: "#f5a524", happy: "#f5a524", sad: "#3e63dd", angry: "#e5484d", contempt: "#a0522d",
    positive: "#30a46c", negative: "#e5484d",
  };
  const PALETTE = ["#3e63dd", "#e5484d", "#30a46c", "#f5a524", "#8e4ec6", "#12a594", "#f76b15", "#d6409f",
                   "#7c8b2e", "#0090ff", "#a0522d", "#5b5bd6"];
  let classes = [];
  let busy = false;
  let current = null; // the result shown
  let previewUrl = null;

  function colorOf(name) {
    const key = String(name).toLowerCase();
    if (NAMED[key]) return NAMED[key];
    const i = classes.indexOf(name);
    return PALETTE[(i >= 0 ? i : hash(key)) % PALETTE.length];
  }
  function hash(s) { let h = 0; for (const c of s) h = (h * 31 + c.charCodeAt(0)) >>> 0; return h; }
  function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%"; }
  function secs(t) { return (t >= 100 ? t.toFixed(0) : t >= 10 ? t.toFixed(1) : t.toFixed(2)) + " s"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function svg(tag, attrs, parent) {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (parent) parent.appendChild(n);
    return n;
  }
  function html(tag, cls, text, parent) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }

  // ------------------------------------------------------------------ model info
  fetch("/models").then((r) => r.json()).then((info) => {
    const m = info.loaded;
    if (!m) throw new Error("no model");
    classes = m.classes || [];
    clear(el.model);
    el.model.append("model ");
    html("b", null, m.name, el.model);
    el.model.append(` · ${classes.length} classes · ${m.engine}${m.fast ? " (fast)" : ""}`);
    el.model.title = classes.join(", ");
    if (m.accepts && m.accepts.indexOf("skeleton") >= 0) {  // a gait model: skeleton files, walking videos
      el.file.accept = "video/*,.npy,.npz,.csv,.h5,.hdf5";
      el.drop.querySelector(".drop-title").textContent = "Choose a skeleton file or a walking video";
    } else if (m.accepts && m.accepts.indexOf("audio") >= 0) {
      el.file.accept = "video/*,audio/*";
      el.drop.querySelector(".drop-title").textContent = "Choose a video or audio file";
    }
  }).catch(() => { el.model.textContent = "model information unavailable"; });
  fetch("/health").then((r) => r.json()).then((h) => {
    if (h.limits) el.limits.textContent = `Largest upload: ${(h.limits.max_upload_bytes / 1048576).toFixed(h.limits.max_upload_bytes < 1048576 ? 2 : 0)} MB.`;
  }).catch(() => {});

  // ------------------------------------------------------------------ upload
  el.file.addEventListener("change", () => { if (el.file.files.length) start(el.file.files[0]); });
  for (const ev of ["dragenter", "dragover"]) {
    el.drop.addEventListener(ev, (e) => { e.preventDefault(); if (!busy) el.drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    el.drop.addEventListener(ev, (e) => { e.preventDefault(); el.drop.classList.remove("over"); });
  }
  el.drop.addEventListener("drop", (e) => {
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f && !busy) start(f);
  });
  // a file dropped outside the zone must not make the browser navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  function setBusy(on) {
    busy = on;
    document.body.classList.toggle("busy", on);
    el.file.disabled = on;
  }
  const TITLES = { 400: "Bad request", 404: "Not found", 408: "Upload too slow", 413: "File too large",
                   415: "Not a supported video", 422: "This file cannot be decoded", 500: "Server error",
                   503: "The server is busy" };
  function showError(status, code, message) {
    clear(el.error);
    html("b", null, status ? (TITLES[status] || `Error ${status}`) : "Network error", el.error);
    html("span", null, message, el.error);
    if (code) html("small", "error-code", status ? `HTTP ${status} · ${code}` : code, el.error);
    el.error.hidden = false;
    el.preview.hidden = true;
  }
  function size(n) { return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`; }

  function start(file) {
    if (busy) return;
    setBusy(true);
    el.error.hidden = true;
    el.filename.textContent = `${file.name} · ${size(file.size)}`;
    el.progress.hidden = false;
    el.progress.classList.remove("indeterminate");
    el.progressBar.style.width = "0%";
    el.status.textContent = "Uploading…";
    el.label.textContent = "";
    el.result.hidden = true;
    el.placeholder.hidden = false;
    current = null;
    const t0 = performance.now();
    showPreview(file);

    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/predict");
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) el.progressBar.style.width = `${(100 * e.loaded / e.total).toFixed(1)}%`;
    });
    xhr.upload.addEventListener("load", () => {
      el.progress.classList.add("indeterminate");
      el.status.textContent = "Analysing…";
    });
    xhr.addEventListener("load", () => {
      finish();
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status === 200 && body && body.label !== undefined) {
        el.status.textContent = `Done in ${secs((performance.now() - t0) / 1000)}.`;
        render(body);
      } else {
        const e = body && body.error ? body.error : { code: "http_" + xhr.status, message: xhr.statusText || "unexpected answer" };
        let msg = e.message;
        const retry = xhr.getResponseHeader("Retry-After");
        if (xhr.status === 503 && retry) msg += ` (try again in ${retry} s)`;
        el.status.textContent = "";
        showError(xhr.status, e.code, msg);
      }
    });
    xhr.addEventListener("error", () => {
      finish();
      el.status.textContent = "";
      showError(0, "", "The server could not be reached, or it closed the connection (is the file too large?).");
    });
    xhr.send(form);
  }
  function finish() {
    setBusy(false);
    el.progress.hidden = true;
    el.file.value = "";
  }
  function showPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    el.preview.hidden = true;
    if (!file.type.startsWith("video/") || !el.preview.canPlayType(file.type)) return;
    previewUrl = URL.createObjectURL(file);
    el.preview.src = previewUrl;
    el.preview.hidden = false;
  }

  // ------------------------------------------------------------------ result
  function render(r) {
    current = r;
    if (!classes.length) classes = Object.keys(r.probabilities || {});
    el.placeholder.hidden = true;
    el.result.hidden = false;
    el.label.textContent = r.label;
    el.label.style.color = colorOf(r.label);
    clear(el.confidence);
    el.confidence.append(pct(r.confidence));
    html("small", null, "confidence", el.confidence);
    if (r.sentiment) {
      el.sentiment.textContent = r.sentiment;
      el.sentiment.className = "pill " + String(r.sentiment).toLowerCase();
      el.sentiment.hidden = false;
    } else {
      el.sentiment.hidden = true;
    }
    renderDetails(r);
    renderBars(r);
    renderCurve(r);
    renderWords(r);
  }

  // per-window text (subtitles or transcript) and the emotional words the lexicon found in it
  function renderWords(r) {
    clear(el.wordsBody);
    const tl = (r.timeline || []).filter((s) => typeof s.text === "string");
    el.words.hidden = tl.length === 0;
    if (!tl.length) return;
    const sources = { subtitles: "subtitle file", embedded: "subtitle stream in the video", transcript: "transcript",
                      asr: "speech recognition", none: "no text found" };
    const from = r.text_source ? ` · text: ${sources[r.text_source] || r.text_source}` : "";
    el.wordsNote.textContent = (r.lexicon ? `· lexicon: ${r.lexicon}` : "· no lexicon configured") + from;
    for (const s of tl) {
      const row = html("tr", null, null, el.wordsBody);
      html("td", "words-time", `${secs(s.start)}–${secs(s.end)}`, row);
      const lab = html("td", "words-label", s.label || "", row);
      if (s.label) lab.style.color = colorOf(s.label);
      const cell = html("td", null, null, row);
      html("div", "words-text", s.text || "(no text)", cell);
      for (const w of s.emotional_words || []) {
        const chip = html("span", "word-chip " + String(w.sentiment || "").toLowerCase(), w.word, cell);
        if (w.emotion) chip.style.borderColor = colorOf(w.emotion);
        chip.title = `${w.concept}: ${w.sentiment}, emotion ${w.emotion || "–"}, degree ${w.degree}` +
          (w.mood_tags && w.mood_tags.length ? `, mood ${w.mood_tags.join(", ")}` : "");
      }
    }
  }

  function renderDetails(r) {
    clear(el.details);
    const rows = [["file", r.video], ["duration", r.duration ? secs(r.duration) : "–"],
                  ["fps", r.fps ? String(r.fps) : "–"], ["snippets", String((r.timeline || []).length)],
                  ["model time", secs(r.inference_seconds || 0)], ["model", r.model]];
    for (const [k, v] of rows) {
      const d = html("div", null, null, el.details);
      html("dt", null, k, d);
      html("dd", null, v, d);
    }
  }

  function renderBars(r) {
    clear(el.probabilities);
    const names = Object.keys(r.probabilities || {});
    names.sort((a, b) => r.probabilities[b] - r.probabilities[a]);
    for (const name of names) {
      const p = r.probabilities[name];
      const row = html("div", "bar-row" + (name === r.label ? " top" : ""), null, el.probabilities);
      row.dataset.class = name;
      const n = html("div", "bar-name", null, row);
      html("span", "swatch", null, n).style.background = colorOf(name);
      html("span", null, name, n);
      const track = html("div", "bar-track", null, row);
      const fill = html("div", "bar-fill", null, track);
      fill.style.background = colorOf(name);
      fill.style.width = "0%";
      requestAnimationFrame(() => { fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`; });
      html("div", "bar-value", pct(p), row);
    }
  }

  // ------------------------------------------------------------------ emotion over time
  const W = 760, H = 280, M = { left: 48, right: 16, top: 18, bottom: 40 };

  function niceStep(span, maxTicks) {
    const steps = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
    for (const s of steps) if (span / s <= maxTicks) return s;
    return Math.ceil(span / maxTicks);
  }

  function renderCurve(r) {
    const root = el.curve;
    clear(root);
    clear(el.legend);
    const tl = (r.timeline || []).filter((s) => isFinite(s.start) && isFinite(s.end));
    const lastEnd = tl.length ? Math.max(...tl.map((s) => s.end)) : 0;
    const duration = Math.max(r.duration || 0, lastEnd, 1e-3);
    const withProbs = tl.length > 0 && tl.every((s) => s.probabilities && typeof s.probabilities === "object");
    const withAtt = tl.length > 0 && tl.every((s) => typeof s.attention === "number");
    let series = [];
    let yMax = 1, yTitle = "probability";
    if (withProbs) {
      const names = Object.keys(r.probabilities || tl[0].probabilities);
      series = names.map((n) => ({ name: n, values: tl.map((s) => Number(s.probabilities[n] || 0)) }));
      el.curveKind.textContent = "· class probability of each snippet";
    } else if (withAtt) {
      series = [{ name: "attention", values: tl.map((s) => s.attention) }];
      yMax = Math.max(...series[0].values) * 1.15 || 1;
      yTitle = "temporal attention";
      el.curveKind.textContent = "· the model's temporal attention on each snippet";
    } else {
      el.curveKind.textContent = "· no per-snippet output";
    }
    const x = (t) => M.left + (W - M.left - M.right) * (t / duration);
    const y = (v) => M.top + (H - M.top - M.bottom) * (1 - v / yMax);

    // grid and axes
    const g = svg("g", {}, root);
    const yStep = yMax === 1 ? 0.25 : niceStep(yMax, 5);
    for (let v = 0; v <= yMax + 1e-9; v += yStep) {
      svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }, g);
      const t = svg("text", { class: "tick", x: M.left - 8, y: y(v) + 4, "text-anchor": "end" }, g);
      t.textContent = String(+v.toFixed(3));
    }
    const xStep = niceStep(duration, 10);
    for (let t = 0; t <= duration + 1e-9; t += xStep) {
      svg("line", { class: "axis", x1: x(t), x2: x(t), y1: H - M.bottom, y2: H - M.bottom + 5 }, g);
      const lab = svg("text", { class: "tick", x: x(t), y: H - M.bottom + 18, "text-anchor": "middle" }, g);
      lab.textContent = +t.toFixed(2);
    }
    svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }, g);
    svg("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }, g);
    svg("text", { class: "axis-title", x: (M.left + W - M.right) / 2, y: H - 6, "text-anchor": "middle" }, g).textContent = "time (s)";
    svg("text", { class: "axis-title", x: 12, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
                  transform: `rotate(-90 12 ${(M.top + H - M.bottom) / 2})` }, g).textContent = yTitle;

    // the time span of each snippet, faintly
    for (const s of tl) {
      svg("rect", { class: "snippet", x: x(s.start), y: M.top, width: Math.max(1, x(s.end) - x(s.start)), height: H - M.top - M.bottom }, root);
    }
    // segments, if the result has any; emotional keyframes (CTEN) shade the same way, labelled "keyframe"
    const keyframes = (r.keyframes || []).map((k) => ({ start: k.start, end: k.end, score: k.score, label: "keyframe" }));
    for (const seg of (r.segments || []).concat(keyframes)) {
      if (!isFinite(seg.start) || !isFinite(seg.end)) continue;
      const c = colorOf(seg.label);
      svg("rect", { class: "segment", x: x(seg.start), y: M.top, width: Math.max(1, x(seg.end) - x(seg.start)),
                    height: H - M.top - M.bottom, fill: c }, root);
      const t = svg("text", { class: "segment-label", x: x(seg.start) + 4, y: M.top + 12, fill: c }, root);
      t.textContent = seg.label + (typeof seg.score === "number" ? ` ${pct(seg.score)}` : "");
    }

    // curves: points at the middle of each snippet (a flat line over a single snippet)
    series.sort((a, b) => (a.name === r.label) - (b.name === r.label)); // the predicted class on top
    for (const sr of series) {
      const c = sr.name === "attention" ? colorOf(r.label) : colorOf(sr.name);
      let pts = tl.map((s, i) => [x((s.start + s.end) / 2), y(sr.values[i])]);
      if (pts.length === 1) pts = [[x(tl[0].start), pts[0][1]], [x(tl[0].end), pts[0][1]]];
      const d = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
      if (sr.name === "attention") {
        const base = y(0).toFixed(1);
        svg("path", { class: "area", d: `${d} L${pts[pts.length - 1][0].toFixed(1)} ${base} L${pts[0][0].toFixed(1)} ${base} Z`, fill: c }, root);
      }
      const top = sr.name === r.label || sr.name === "attention";
      const path = svg("path", { class: "curve" + (top ? " top" : ""), d, stroke: c, "data-class": sr.name }, root);
      const title = svg("title", {}, path);
      title.textContent = sr.name;
      if (top) for (const p of pts) svg("circle", { class: "dot", cx: p[0], cy: p[1], r: 3.5, fill: c }, root);
    }
    for (const sr of series.slice().reverse()) {
      const item = html("span", sr.name === r.label || sr.name === "attention" ? "top" : null, null, el.legend);
      html("i", "line", null, item).style.background = sr.name === "attention" ? colorOf(r.label) : colorOf(sr.name);
      item.append(sr.name === "attention" ? "temporal attention" : sr.name);
    }
    if ((r.segments || []).length || keyframes.length) {
      const item = html("span", null, null, el.legend);
      const box = html("i", "line", null, item);
      box.style.background = "#d9dcea";
      box.style.height = "10px";
      item.append((r.segments || []).length ? (keyframes.length ? "segments, keyframes" : "segments") : "keyframes");
    }
    // playback cursor, following the preview video
    const cursor = svg("line", { class: "cursor", x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, visibility: "hidden" }, root);
    root._cursor = { line: cursor, x, duration };
    moveCursor();
  }

  function moveCursor() {
    const c = el.curve._cursor;
    if (!c || el.preview.hidden || !current) return;
    const t = el.preview.currentTime || 0;
    const vis = t > 0 && t <= c.duration;
    c.line.setAttribute("visibility", vis ? "visible" : "hidden");
    c.line.setAttribute("x1", c.x(t));
    c.line.setAttribute("x2", c.x(t));
  }
  el.preview.addEventListener("timeupdate", moveCursor);
  el.preview.addEventListener("seeked", moveCursor);
  el.curve.addEventListener("click", (e) => {
    const c = el.curve._cursor;
    if (!c || el.preview.hidden) return;
    const box = el.curve.getBoundingClientRect();
    const px = (e.clientX - box.left) * (W / box.width);
    const t = ((px - M.left) / (W - M.left - M.right)) * c.duration;
    if (t >= 0 && t <= c.duration) el.preview.currentTime = t;
  });
})();
