"use strict";
// The review page: renders the run state (embedded; refreshed from /api/state when live),
// saves verdicts (POST /api/verdict with the approvals version it read), plays clips.
(() => {
  const $ = (id) => document.getElementById(id);
  const CFG = JSON.parse($("config").textContent);
  let S = JSON.parse($("state").textContent);
  let sel = 0, target = null, shownKey = null, pendingRetake = null;
  const LABEL = {approve: "approved", retake: "retake", pending: "pending", needs_review: "needs review"};
  const esc = (x) => String(x == null ? "" : x).replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const url = (p) => CFG.base + p.split("/").map(encodeURIComponent).join("/");
  const fps = () => CFG.fps || 24;

  function toast(msg) {
    const t = $("toast"); t.textContent = msg; t.hidden = false;
    clearTimeout(toast.t); toast.t = setTimeout(() => { t.hidden = true; }, 3500);
  }

  function visible() {
    const st = $("f-status").value, gate = $("f-gate").value;
    return S.shots.filter((s) => (!st || s.status === st || verdictOf(s, "keyframes") === st ||
      verdictOf(s, "video") === st) && (!gate || s.failing_gates.includes(gate)));
  }
  const verdictOf = (s, kind) => (s.verdicts[kind] || {}).verdict || "pending";
  const current = () => S.shots[sel];

  function fillFilters() {
    const opts = (el, values, keep) => {
      const v = el.value;
      el.innerHTML = `<option value="">${keep}</option>` + values.map((x) =>
        `<option value="${esc(x)}">${esc(LABEL[x] || x)}</option>`).join("");
      el.value = values.includes(v) ? v : "";
    };
    const statuses = new Set();
    S.shots.forEach((s) => { statuses.add(s.status); statuses.add(verdictOf(s, "keyframes")); });
    opts($("f-status"), [...statuses].sort(), "all");
    opts($("f-gate"), [...new Set(S.shots.flatMap((s) => s.failing_gates))].sort(), "any");
  }

  function renderHeader() {
    $("sub").textContent = `run ${S.run_id} · updated ${S.updated_at || "?"} · verdicts v${S.approvals_version}` +
      (CFG.live ? "" : " · read-only copy: review with `python -m driver review RUN_DIR`");
    $("next").hidden = !(S.next_command && CFG.live);
    $("next-cmd").textContent = S.next_command || "";
    $("banner").hidden = !S.error; $("banner").textContent = S.error || "";
    const cut = S.cut;
    $("cut-box").hidden = !cut;
    if (!cut) return;
    const v = $("cut");
    if (v.dataset.src !== cut.path) { v.dataset.src = cut.path; v.src = url(cut.path); }
    const total = cut.markers.reduce((a, m) => a + m.duration_s, 0) || 1;
    $("markers").innerHTML = cut.markers.map((m) => {
      const s = S.shots.find((x) => x.id === m.shot) || {status: "pending"};
      const ph = cut.placeholders.includes(m.shot) ? " (placeholder)" : "";
      return `<div class="marker st-${esc(s.status)}" data-shot="${esc(m.shot)}" data-t="${m.start_s}"` +
        ` style="width:${(100 * m.duration_s / total).toFixed(3)}%" title="${esc(m.shot + ph)}">${esc(m.shot)}${ph}</div>`;
    }).join("");
  }

  function thumb(s) {
    const k = s.keyframes.find((x) => x.role === "hero") || s.keyframes.find((x) => x.role === "first") ||
      s.keyframes[0];
    return k ? `<img loading="lazy" src="${esc(url(k.path))}" alt="">` : `<img alt="">`;
  }

  function renderTimeline() {
    const vis = new Set(visible().map((s) => s.id));
    $("timeline").innerHTML = S.shots.map((s, i) => {
      const w = Math.max(56, Math.round((s.duration_s || 1) * 40));
      return `<div class="tile${i === sel ? " sel" : ""}${vis.has(s.id) ? "" : " hidden"}" data-i="${i}"` +
        ` style="width:${w}px" title="${esc(s.id)}: ${esc(s.status)}">${thumb(s)}<div class="lbl st-${esc(s.status)}">` +
        `<span>${esc(s.id)}</span><span>${esc(LABEL[verdictOf(s, "keyframes")][0].toUpperCase())}</span></div></div>`;
    }).join("");
  }

  function attemptsTable(s) {
    const rows = s.jobs.flatMap((j) => j.attempts.map((a) => {
      const play = a.video ? `<button class="play-att" data-v="${esc(a.video)}" data-fps="${fps()}">play</button> ` +
        `<button class="cmp-att" data-v="${esc(a.video)}">beside</button>` : "";
      return `<tr class="${a.n === j.selected ? "sel-att" : ""}"><td>${esc(j.id)}</td><td>a${esc(a.n)}` +
        `${a.n === j.selected ? " ✓" : ""}</td><td>${esc(a.seed)}</td><td><span class="badge st-${esc(a.status)}">` +
        `${esc(a.status)}</span></td><td>${a.score == null ? "" : esc(a.score)}</td>` +
        `<td>${a.exec_s == null ? "" : esc(a.exec_s)}</td><td>${play}</td><td>${gatesHtml(a)}</td></tr>`;
    }));
    return rows.length ? `<h2>Attempts</h2><table><tr><th>job</th><th>attempt</th><th>seed</th><th>status</th>` +
      `<th>score</th><th>exec s</th><th></th><th>gates</th></tr>${rows.join("")}</table>` : "";
  }

  function gatesHtml(a) {
    const g = a.gates.map((x) => {
      const frames = x.failed_frames.slice(0, 24).map((f) =>
        `<button class="frame" data-frame="${f}" data-n="${a.report_frames || ""}" data-v="${esc(a.video || "")}"` +
        ` title="seek to frame ${f}">${f}</button>`).join("");
      return `<div><span class="badge ${x.passed ? "pass" : "fail"}">${esc(x.name)}</span> ` +
        `${x.reasons.map(esc).join("; ")} ${frames}</div>`;
    }).join("");
    const card = a.images.length ? a.images.map((p) =>
      `<a href="${esc(url(p))}" class="card" data-full="${esc(p)}">${esc(p.split("/").pop())}</a>`).join(" ") : "";
    return g + (a.error ? `<div class="err">${esc(a.error)}</div>` : "") + card;
  }

  function verdictBox(s, kind, label) {
    const e = s.verdicts[kind] || {}, v = e.verdict || "pending";
    const btn = (val, key) => CFG.live ? `<button class="vb" data-kind="${kind}" data-v="${val}">` +
      `${esc(LABEL[val])} (${key})</button>` : "";
    return `<div class="vbox${kind === target ? " target" : ""}" data-kind="${kind}"><div>${label}: ` +
      `<span class="badge v-${esc(v)}">${esc(LABEL[v] || v)}</span>` +
      `${e.by ? ` <span class="meta">by ${esc(e.by)} ${esc(e.at || "")}</span>` : ""}</div>` +
      `${e.note ? `<div class="note">${esc(e.note)}</div>` : ""}<div class="ctrl">${btn("approve", "A")}` +
      `${btn("retake", "R")}${btn("needs_review", "N")}</div></div>`;
  }

  function renderDetail(force) {
    const s = current();
    if (!s) { $("detail").innerHTML = `<p class="empty">no shots</p>`; return; }
    if (!target || (target === "video" && !s.video)) target = s.video ? "video" : "keyframes";
    const key = JSON.stringify([s, target]);
    if (!force && key === shownKey) return;
    const playing = document.querySelector("#player-a video");
    const keep = playing && shownKey && JSON.parse(shownKey)[0].id === s.id ? playing.currentTime : null;
    shownKey = key;
    const prompts = Object.entries(s.prompts).filter(([k]) => k !== "negative")
      .map(([k, v]) => `<div class="prompt"><b>${esc(k)}</b>: ${esc(v)}</div>`).join("") +
      (s.workflow ? `<div class="prompt"><a href="${esc(url(s.workflow))}">workflow</a></div>` : "");
    const kfs = s.keyframes.map((k) => `<figure><img src="${esc(url(k.path))}" data-full="${esc(k.path)}"` +
      ` alt="${esc(k.role)}" class="kf-img"><figcaption>${esc(k.role)}</figcaption></figure>`).join("");
    const clip = s.video ? `<div class="players"><div class="player" id="player-a">` +
      `<video src="${esc(url(s.video.path))}" controls muted loop preload="none"></video>` +
      `<div class="ctrl"><button id="fb">&#9664; frame</button><button id="ff">frame &#9654;</button>` +
      `<span id="fa">frame 0</span> <span class="meta" id="la">clip (attempt ${esc(s.video.attempt)})</span></div></div>` +
      `<div class="player" id="player-b" hidden><video controls muted loop preload="metadata"></video>` +
      `<div class="ctrl"><span class="meta" id="lb"></span> <button id="close-b">close</button></div></div></div>` :
      `<p class="empty">no clip yet</p>`;
    $("detail").innerHTML = `<div class="head"><span class="id">${esc(s.id)}</span>` +
      `<span class="badge st-${esc(s.status)}">${esc(s.status)}</span><span class="meta">${esc(s.approach)}` +
      `${s.duration_s ? ` · ${esc(s.duration_s)} s` : ""} · ${esc(s.characters.join(", ") || "no character")}` +
      `</span></div>${prompts}${s.notes ? `<div class="prompt"><b>notes</b>: ${esc(s.notes)}</div>` : ""}` +
      `${s.error ? `<div class="err">${esc(s.error)}</div>` : ""}<div class="verdicts">` +
      `${verdictBox(s, "keyframes", "keyframes")}${verdictBox(s, "video", "clip")}</div>` +
      `<div class="cols"><div><h2>Keyframes</h2><div class="kf">${kfs || "<i>none yet</i>"}</div></div>` +
      `<div><h2>Clip</h2>${clip}</div></div>${attemptsTable(s)}`;
    const v = document.querySelector("#player-a video");
    if (v) {
      v.addEventListener("timeupdate", () => { $("fa").textContent = `frame ${Math.round(v.currentTime * fps())}`; });
      if (keep != null) v.currentTime = keep;
      // load the clip once the reviewer stays on the shot (arrow keys held do not open every clip)
      setTimeout(() => { if (v.isConnected && v.preload === "none") v.preload = "auto"; }, keep != null ? 0 : 150);
    }
  }

  function render(force) {
    if (sel >= S.shots.length) sel = Math.max(0, S.shots.length - 1);
    fillFilters(); renderHeader(); renderTimeline(); renderDetail(force);
  }

  function select(i) {
    if (i < 0 || i >= S.shots.length || i === sel) return;
    sel = i; target = null;
    document.querySelectorAll(".tile.sel").forEach((t) => t.classList.remove("sel"));
    const tile = document.querySelector(`.tile[data-i="${i}"]`);
    if (tile) { tile.classList.add("sel"); tile.scrollIntoView({block: "nearest", inline: "nearest"}); }
    renderDetail(true);
  }

  function move(step) {
    const vis = visible().map((s) => S.shots.indexOf(s));
    if (!vis.length) return;
    const pos = vis.indexOf(sel);
    select(vis[pos < 0 ? 0 : Math.min(vis.length - 1, Math.max(0, pos + step))]);
  }

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({credentials: "same-origin"}, opts || {}));
    const body = await r.json().catch(() => ({error: `HTTP ${r.status}`}));
    return {status: r.status, body};
  }

  async function setVerdict(verdict, note) {
    const s = current();
    if (!CFG.live || !s) return;
    const kind = target || "keyframes";
    const box = document.querySelector(`.vbox[data-kind="${kind}"] .note`);
    const r = await api("api/verdict", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({shot: s.id, kind, verdict, note: note == null ? (box ? box.textContent : "") : note,
        version: S.approvals_version})});
    if (r.body.state) { S = r.body.state; render(true); }
    if (r.status === 200) toast(`${s.id} ${kind}: ${LABEL[verdict]}`);
    else toast(r.body.error || `not saved (HTTP ${r.status})`);
  }

  async function poll() {
    setTimeout(poll, CFG.poll_ms || 1500);
    let r;
    try {
      r = await api(`api/state?since=${encodeURIComponent(S.stamp || "")}`);
    } catch (e) { return; /* server gone: keep what is shown */ }
    if (r.status === 200 && r.body.shots) { S = r.body; render(false); }
  }

  function step(n) {
    const v = document.querySelector("#player-a video");
    if (v) { v.pause(); v.currentTime = Math.max(0, v.currentTime + n / fps()); }
  }

  // frame of the clip the gates saw (``count`` frames: WAN's rate, before any retime) -> time in the clip
  function seek(frame, path, count) {
    const v = document.querySelector("#player-a video");
    if (!v) return;
    v.preload = "auto";
    if (path && !v.src.endsWith(url(path))) { v.src = url(path); }
    const go = () => { v.pause(); v.currentTime = count ? (frame + 0.5) / count * v.duration : (frame + 0.5) / fps(); };
    if (v.readyState >= 1) go(); else v.addEventListener("loadedmetadata", go, {once: true});
  }

  function openBeside(path) {
    const a = document.querySelector("#player-a video"), box = $("player-b");
    if (!a || !box) return;
    const b = box.querySelector("video");
    box.hidden = false; b.src = url(path); $("lb").textContent = path.split("/").pop();
    const sync = () => { b.currentTime = a.currentTime; if (a.paused) b.pause(); else b.play().catch(() => {}); };
    a.onplay = sync; a.onpause = sync; a.onseeked = sync;
    b.addEventListener("loadedmetadata", sync, {once: true});
  }

  function lightbox(path) {
    $("lightbox-img").src = url(path); $("lightbox-cap").textContent = path; $("lightbox").hidden = false;
  }

  function askRetake() {
    const s = current(); if (!s || !CFG.live) return;
    pendingRetake = target; $("note-dialog").hidden = false;
    $("note-label").textContent = `${s.id} ${target === "video" ? "clip" : "keyframes"}: retake, what should change?`;
    $("note-input").value = (s.verdicts[target] || {}).note || ""; $("note-input").focus();
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-i],[data-t],.kf-img,.vb,.play-att,.cmp-att,.frame,.card,#fb,#ff,#close-b," +
      "#lightbox,#help-btn");
    if (!t) return;
    if (t.dataset.i) select(+t.dataset.i);
    else if (t.dataset.t) { $("cut").currentTime = +t.dataset.t; select(S.shots.findIndex((s) => s.id === t.dataset.shot)); }
    else if (t.classList.contains("kf-img") || t.classList.contains("card")) { ev.preventDefault(); lightbox(t.dataset.full); }
    else if (t.classList.contains("vb")) { target = t.dataset.kind; t.dataset.v === "retake" ? askRetake() : setVerdict(t.dataset.v); }
    else if (t.classList.contains("play-att")) { seek(0, t.dataset.v); $("la").textContent = t.dataset.v.split("/").pop(); }
    else if (t.classList.contains("cmp-att")) openBeside(t.dataset.v);
    else if (t.classList.contains("frame")) seek(+t.dataset.frame, t.dataset.v || null, +t.dataset.n || 0);
    else if (t.id === "fb") step(-1); else if (t.id === "ff") step(1);
    else if (t.id === "close-b") $("player-b").hidden = true;
    else if (t.id === "lightbox") $("lightbox").hidden = true;
    else if (t.id === "help-btn") $("help").hidden = false;
  });

  $("note-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault(); $("note-dialog").hidden = true; target = pendingRetake;
      setVerdict("retake", $("note-input").value);
    } else if (ev.key === "Escape") { $("note-dialog").hidden = true; }
    ev.stopPropagation();
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input,textarea,select") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "Escape") { ["lightbox", "help", "note-dialog"].forEach((id) => { $(id).hidden = true; }); return; }
    const acts = {ArrowRight: () => move(1), ArrowDown: () => move(1), ArrowLeft: () => move(-1),
      ArrowUp: () => move(-1), a: () => setVerdict("approve"), r: askRetake, n: () => setVerdict("needs_review"),
      t: () => { target = target === "video" ? "keyframes" : "video"; renderDetail(true); },
      " ": () => { const v = document.querySelector("#player-a video"); if (v) v.paused ? v.play() : v.pause(); },
      ",": () => step(-1), ".": () => step(1), "?": () => { $("help").hidden = !$("help").hidden; }};
    const act = acts[k.length === 1 ? k.toLowerCase() : k] || (k === "?" && acts["?"]);
    if (act) { ev.preventDefault(); act(); }
  });
  ["f-status", "f-gate"].forEach((id) => $(id).addEventListener("change", () => { renderTimeline(); move(0); }));

  render(true);
  // for tests and benchmarks: the state, the selected shot, the verdict target, when the page became interactive
  window.review = {state: () => S, selected: () => current() && current().id, target: () => target,
    ready: performance.now()};
  if (CFG.live) setTimeout(poll, CFG.poll_ms || 1500);
})();
