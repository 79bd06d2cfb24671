// Tidemark dashboard: the live page (data from /events, Server-Sent Events)
// and the offline report (data inline in #tidemark-data). Charts by uPlot.
//
// window.tidemark exposes the page's state to tests and to the curious:
//   ready      true once the charts were drawn from a snapshot
//   mode       "live" or "report"
//   model      the data: {windows, horizonMs, retainMs, maxPoints, symbols, stats}
//   seq        the sequence number of the last record applied (live)
//   snapshots, frames, gaps, renders   counters
//   charts     uPlot instances by name (price, zscore, lookahead, throughput,
//              watermark, lag, eventrate); chartData(name) is what was drawn
//   inked(name) a promise of the pixels each series draws alone, in its colour
//   select(symbol, window), showRange(fromMs, toMs), showAll()
"use strict";
(function () {
  const KINDS = ["price", "moving", "zscore", "higher", "lower"];
  const TOPICS = ["btc-price", "btc-price-moving", "btc-price-zscore", "btc-price-higher", "btc-price-lower"];
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const $ = (id) => document.getElementById(id);
  const mode = document.body.dataset.mode === "report" ? "report" : "live";

  const T = (window.tidemark = {
    ready: false, mode, model: null, seq: 0, snapshots: 0, frames: 0, gaps: 0, renders: 0,
    charts: {}, heatmap: null, selection: { symbol: null, window: null }, range: null,
  });

  let M = null; // the live (or report) model
  let R = null; // a past range fetched from the server (live mode), or null

  // ------------------------------------------------------------ model

  function widthOf(kind, n) {
    return kind === "moving" ? 3 * n : kind === "zscore" ? 1 + n : 1;
  }
  function emptySeries(w) {
    return { newest: -Infinity, t: [], c: Array.from({ length: w }, () => []) };
  }
  function fromSnapshot(s) {
    const m = {
      title: s.title || "", generated: s.generated || "", windows: s.windows || [], horizonMs: s.horizonMs || 0, retainMs: s.retainMs || 0,
      maxPoints: s.maxPoints || 0, symbols: {}, stats: s.stats || [],
    };
    const n = m.windows.length;
    for (const [name, ss] of Object.entries(s.symbols || {})) {
      const dst = (m.symbols[name] = {});
      for (const k of KINDS) dst[k] = ss[k] ? { newest: ss[k].newest, t: ss[k].t, c: ss[k].c } : emptySeries(widthOf(k, n));
    }
    return m;
  }
  function push(dst, src) {
    for (let i = 0; i < src.length; i++) dst.push(src[i]);
  }
  // appendSeries appends a delta's points and applies the hub's bounds: the
  // last maxPoints points, then those within retainMs of the newest time.
  function appendSeries(dst, src) {
    push(dst.t, src.t);
    for (let c = 0; c < dst.c.length; c++) push(dst.c[c], src.c[c]);
    if (src.newest > dst.newest) dst.newest = src.newest;
    let drop = M.maxPoints > 0 ? Math.max(0, dst.t.length - M.maxPoints) : 0;
    if (M.retainMs > 0) {
      const limit = dst.newest - M.retainMs;
      while (drop < dst.t.length && dst.t[drop] < limit) drop++;
    }
    if (drop > 0) {
      dst.t.splice(0, drop);
      for (const a of dst.c) a.splice(0, drop);
    }
  }
  function applyDelta(d) {
    const n = M.windows.length;
    for (const [name, ss] of Object.entries(d.symbols || {})) {
      let dst = M.symbols[name];
      if (!dst) {
        dst = M.symbols[name] = {};
        for (const k of KINDS) dst[k] = emptySeries(widthOf(k, n));
      }
      for (const k of KINDS) if (ss[k]) appendSeries(dst[k], ss[k]);
    }
    if (d.stats) {
      push(M.stats, d.stats);
      const last = M.stats[M.stats.length - 1].t;
      const keep = M.retainMs > 0 ? M.retainMs : 3600e3;
      let drop = 0;
      while (drop < M.stats.length && M.stats[drop].t < last - keep) drop++;
      if (drop > 0) M.stats.splice(0, drop);
    }
    T.seq = d.to;
  }

  // ------------------------------------------------------------ data for the charts

  // order returns the indexes of s's points with times in [from, to], by time.
  function order(s, from, to) {
    const idx = [];
    for (let i = 0; i < s.t.length; i++) {
      const t = s.t[i];
      if (t >= from && t <= to) idx.push(i);
    }
    for (let j = 1; j < idx.length; j++) {
      if (s.t[idx[j]] < s.t[idx[j - 1]]) {
        idx.sort((a, b) => s.t[a] - s.t[b] || a - b);
        break;
      }
    }
    return idx;
  }

  // merge joins two series on time: one x per distinct time of either.
  function merge(a, ai, b, bi, fa, fb, na, nb) {
    const x = [], ys = [];
    for (let k = 0; k < na + nb; k++) ys.push([]);
    let i = 0, j = 0;
    while (i < ai.length || j < bi.length) {
      const ta = i < ai.length ? a.t[ai[i]] : Infinity;
      const tb = j < bi.length ? b.t[bi[j]] : Infinity;
      const t = Math.min(ta, tb);
      x.push(t / 1000);
      const va = ta === t ? fa(ai[i++]) : null;
      const vb = tb === t ? fb(bi[j++]) : null;
      for (let k = 0; k < na; k++) ys[k].push(va ? va[k] : null);
      for (let k = 0; k < nb; k++) ys[na + k].push(vb ? vb[k] : null);
    }
    return [x, ...ys];
  }

  function priceData(ss, w, n, from, to) {
    let P = ss.price;
    let pcol = 0;
    if (P.t.length === 0 && ss.zscore.t.length > 0) P = ss.zscore; // no btc-price: the z-score records' prices
    const Mv = ss.moving;
    return merge(P, order(P, from, to), Mv, order(Mv, from, to),
      (i) => [P.c[pcol][i]],
      (i) => {
        const a = Mv.c[w][i], s = Mv.c[n + w][i];
        return s === null || a === null ? [a, null, null] : [a, a + s, a - s];
      }, 1, 3);
  }
  function zscoreData(ss, n, from, to) {
    const Z = ss.zscore, idx = order(Z, from, to);
    const out = [idx.map((i) => Z.t[i] / 1000)];
    for (let w = 0; w < n; w++) out.push(idx.map((i) => Z.c[1 + w][i]));
    return out;
  }
  function lookaheadData(ss, from, to) {
    const H = ss.higher, L = ss.lower;
    return merge(H, order(H, from, to), L, order(L, from, to), (i) => [H.c[0][i]], (i) => [L.c[0][i]], 1, 1);
  }
  function statsData(stats, field) {
    const names = [];
    for (const s of stats) for (const r of s.stages) if (!names.includes(r.name)) names.push(r.name);
    const x = stats.map((s) => s.t / 1000);
    const ys = names.map((name) => stats.map((s) => {
      const r = s.stages.find((r) => r.name === name);
      return r && r[field] !== undefined ? r[field] : null;
    }));
    return { names, data: [x, ...ys] };
  }
  function eventRateData(ss, from, to) {
    const buckets = new Map();
    KINDS.forEach((k, ki) => {
      const s = ss[k];
      for (let i = 0; i < s.t.length; i++) {
        const t = s.t[i];
        if (t < from || t > to) continue;
        const b = Math.floor(t / 1000);
        let row = buckets.get(b);
        if (!row) buckets.set(b, (row = [0, 0, 0, 0, 0]));
        row[ki]++;
      }
    });
    const keys = [...buckets.keys()].sort((a, b) => a - b);
    return [keys, ...KINDS.map((_, ki) => keys.map((b) => buckets.get(b)[ki]))];
  }

  // ------------------------------------------------------------ drawing

  const fmtTime = (u, v) => (v == null ? "—" : new Date(v * 1000).toISOString().replace("T", " ").replace("Z", ""));
  const fmtNum = (d) => (u, v) => (v == null ? "—" : v.toFixed(d));

  function draw(name, el, series, data, opts) {
    const key = series.map((s) => s.label).join("|");
    let u = T.charts[name];
    if (u && u._key !== key) {
      u.destroy();
      u = null;
    }
    const width = Math.max(300, el.clientWidth || 800);
    if (!u) {
      u = new uPlot({
        width, height: opts.height || 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        scales: { x: { time: true } },
        axes: [{}, { size: opts.axisSize || 60 }],
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
        series: [{ label: "time (UTC)", value: fmtTime }, ...series],
        bands: opts.bands,
      }, data, el);
      u._key = key;
      u._colours = series.map((s) => (s.points && s.points.fill) || s.stroke);
      T.charts[name] = u;
    } else {
      if (u.width !== width) u.setSize({ width, height: u.height });
      u.setData(data);
    }
    return u;
  }

  function line(label, i, extra) {
    return Object.assign({ label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true }, extra || {});
  }

  function drawHeatmap(ss, n, from, to, labels) {
    const cv = $("heatmap");
    const W = Math.max(100, cv.clientWidth || 800);
    const rowH = 20;
    cv.width = W;
    cv.height = n * rowH;
    const ctx = cv.getContext("2d");
    ctx.clearRect(0, 0, cv.width, cv.height);
    const Z = ss.zscore, idx = order(Z, from, to);
    let filled = 0;
    if (idx.length > 0) {
      const t0 = Z.t[idx[0]], t1 = Z.t[idx[idx.length - 1]];
      const span = Math.max(1, t1 - t0);
      const col = new Int32Array(W).fill(-1); // the last point of each column
      for (const i of idx) col[Math.min(W - 1, Math.floor(((Z.t[i] - t0) / span) * (W - 1)))] = i;
      for (let x = 0; x < W; x++) {
        const i = col[x];
        if (i < 0) continue;
        filled++;
        for (let w = 0; w < n; w++) {
          ctx.fillStyle = zColour(Z.c[1 + w][i]);
          ctx.fillRect(x, w * rowH, 1, rowH);
        }
      }
    }
    $("heat-labels").innerHTML = labels.map((l) => "<span>" + esc(l) + "</span>").join("");
    T.heatmap = { columns: W, filled, points: idx.length };
  }
  function zColour(z) {
    if (z === null || z === undefined) return "#cccccc";
    const f = Math.min(1, Math.abs(z) / 3);
    const [r, g, b] = z < 0 ? [33, 102, 172] : [178, 24, 43];
    const mix = (c) => Math.round(255 + (c - 255) * f);
    return "rgb(" + mix(r) + "," + mix(g) + "," + mix(b) + ")";
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function fmt(v, d) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    return typeof v === "number" ? v.toLocaleString("en-US", { maximumFractionDigits: d || 0 }) : String(v);
  }

  function drawCounters(stats) {
    const last = stats.length > 0 ? stats[stats.length - 1] : { stages: [] };
    const rows = last.stages.map((r) => {
      const warn = (v) => (v > 0 ? ' class="warn"' : "");
      return "<tr><td>" + esc(r.name) + "</td><td>" + fmt(r.in) + "</td><td>" + fmt(r.out) + "</td><td>" + fmt(r.inRate, 1) +
        "</td><td>" + fmt(r.lag) + "</td><td>" + (r.wmDelay == null ? "—" : fmt(r.wmDelay, 1) + " s") + "</td><td" + warn(r.late) + ">" +
        fmt(r.late) + "</td><td" + warn(r.dup) + ">" + fmt(r.dup) + "</td><td" + warn(r.invalid) + ">" + fmt(r.invalid) +
        "</td><td" + warn(r.dead) + ">" + fmt(r.dead) + "</td></tr>";
    });
    $("counters").tBodies[0].innerHTML = rows.length ? rows.join("") : '<tr><td colspan="10" class="empty">no counters yet</td></tr>';
  }

  function syncSelect(sel, values, current) {
    const have = [...sel.options].map((o) => o.value);
    if (have.join("\n") !== values.join("\n")) {
      sel.innerHTML = values.map((v) => "<option>" + esc(v) + "</option>").join("");
    }
    if (current !== null && values.includes(current)) sel.value = current;
    return sel.value || null;
  }

  function render() {
    if (!M) return;
    const m = R || M;
    const n = m.windows.length;
    const syms = Object.keys(M.symbols).concat(R ? Object.keys(R.symbols) : []).filter((v, i, a) => a.indexOf(v) === i).sort();
    T.selection.symbol = syncSelect($("symbol"), syms, T.selection.symbol);
    T.selection.window = syncSelect($("window"), m.windows, T.selection.window);
    const wi = Math.max(0, m.windows.indexOf(T.selection.window));
    const wl = m.windows[wi] || "—";
    $("band-label").textContent = wl;
    $("horizon").textContent = m.horizonMs ? m.horizonMs / 1000 + " s" : "—";
    const from = T.range ? T.range.from : -Infinity, to = T.range ? T.range.to : Infinity;
    let ss = m.symbols[T.selection.symbol];
    if (!ss) {
      ss = {};
      for (const k of KINDS) ss[k] = emptySeries(widthOf(k, n));
    }
    draw("price", $("chart-price"), [
      line("price", 0),
      line("mean " + wl, 1),
      line("mean + std", 4, { width: 1, dash: [4, 3] }),
      line("mean − std", 4, { width: 1, dash: [4, 3] }),
    ], priceData(ss, wi, n, from, to), { height: 280, axisSize: 80, bands: [{ series: [3, 4], fill: "rgba(255,127,14,0.15)" }] });
    draw("zscore", $("chart-zscore"), m.windows.map((l, i) => line("z " + l, i)), zscoreData(ss, n, from, to), { height: 220 });
    drawHeatmap(ss, n, from, to, m.windows);
    draw("lookahead", $("chart-lookahead"), [
      line("higher_window (s)", 2, { width: 0, points: { show: true, size: 3, fill: PALETTE[2] }, paths: () => null }),
      line("lower_window (s)", 1, { width: 0, points: { show: true, size: 3, fill: PALETTE[1] }, paths: () => null }),
    ], lookaheadData(ss, from, to), { height: 200 });
    if (mode === "live") {
      for (const [name, field, d] of [["throughput", "inRate", 0], ["watermark", "wmDelay", 1], ["lag", "lag", 0]]) {
        const sd = statsData(m.stats, field);
        draw(name, $("chart-" + name), sd.names.map((s, i) => line(s, i, { value: fmtNum(d) })), sd.data, { height: 200 });
      }
    } else {
      draw("eventrate", $("chart-eventrate"), TOPICS.map((t, i) => line(t, i)), eventRateData(ss, from, to), { height: 200 });
    }
    drawCounters(m.stats);
    T.renders++;
    T.ready = true;
    status();
  }

  let timer = null, lastRender = 0;
  function schedule(now) {
    if (timer !== null) return;
    const wait = now ? 0 : Math.max(0, 250 - (performance.now() - lastRender));
    timer = setTimeout(() => {
      timer = null;
      lastRender = performance.now();
      render();
    }, wait);
  }

  let problem = "";
  function status() {
    const el = $("status");
    let s;
    if (mode === "report") {
      s = "offline report" + (M && M.generated ? " · made " + M.generated : "");
    } else {
      s = "live · record " + T.seq + " · update " + T.frames;
    }
    if (M) s += " · " + Object.keys(M.symbols).length + " symbol(s)";
    if (T.range) s += " · range " + new Date(T.range.from).toISOString() + " – " + (T.range.to === Infinity ? "latest" : new Date(T.range.to).toISOString());
    if (problem) s += " · " + problem;
    el.textContent = s;
    el.classList.toggle("bad", problem !== "");
  }

  // ------------------------------------------------------------ range and selection

  function parseTime(s) {
    s = s.trim();
    if (s === "") return null;
    if (/^\d+$/.test(s)) return Number(s);
    const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
    return Number.isNaN(t) ? undefined : t;
  }
  T.showRange = function (from, to) {
    const f = from == null ? -Infinity : from, t = to == null ? Infinity : to;
    T.range = { from: f, to: t };
    if (mode === "live") {
      const q = [];
      if (Number.isFinite(f)) q.push("from=" + f);
      if (Number.isFinite(t)) q.push("to=" + t);
      return fetch("api/snapshot" + (q.length ? "?" + q.join("&") : ""), { cache: "no-store" })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
        .then((s) => {
          R = fromSnapshot(s);
          problem = "";
          render();
        })
        .catch((e) => {
          problem = "range: " + e.message;
          status();
        });
    }
    render();
    return Promise.resolve();
  };
  T.showAll = function () {
    T.range = null;
    R = null;
    render();
  };
  T.select = function (symbol, win) {
    if (symbol != null) T.selection.symbol = symbol;
    if (win != null) T.selection.window = win;
    render();
  };
  T.chartData = (name) => (T.charts[name] ? T.charts[name].data : null);
  // inked counts, for each series of a chart drawn alone, the pixels of
  // its colour (series that coincide hide each other when drawn together).
  T.inked = async function (name) {
    const u = T.charts[name];
    if (!u) return null;
    const shown = u.series.map((s) => s.show);
    const show = (f) => u.batch(() => {
      for (let j = 1; j < u.series.length; j++) u.setSeries(j, { show: f(j) });
    });
    const out = [];
    try {
      for (let i = 1; i < u.series.length; i++) {
        show((j) => j === i);
        await new Promise((r) => setTimeout(r, 0));
        out.push(count(u, u._colours[i - 1]));
      }
    } finally {
      show((j) => shown[j]);
    }
    return out;
  };
  function count(u, colour) {
    const cv = u.ctx.canvas;
    const px = u.ctx.getImageData(0, 0, cv.width, cv.height).data;
    const [r, g, b] = hex(colour);
    let n = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 200 && Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b) < 60) n++;
    }
    return n;
  }
  function hex(c) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
    return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [0, 0, 0];
  }

  $("symbol").addEventListener("change", (e) => T.select(e.target.value, null));
  $("window").addEventListener("change", (e) => T.select(null, e.target.value));
  $("apply").addEventListener("click", () => {
    const f = parseTime($("from").value), t = parseTime($("to").value);
    if (f === undefined || t === undefined) {
      problem = "range: want RFC 3339 times (UTC) or Unix milliseconds";
      status();
      return;
    }
    problem = "";
    T.showRange(f, t);
  });
  $("all").addEventListener("click", () => T.showAll());
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(render, 150);
  });

  // ------------------------------------------------------------ start

  if (mode === "report") {
    M = T.model = fromSnapshot(JSON.parse($("tidemark-data").textContent));
    render();
    return;
  }
  const es = new EventSource("events");
  es.addEventListener("snapshot", (ev) => {
    const s = JSON.parse(ev.data);
    M = T.model = fromSnapshot(s);
    T.seq = s.seq;
    T.snapshots++;
    problem = "";
    schedule(true);
  });
  es.addEventListener("delta", (ev) => {
    if (!M) return;
    const d = JSON.parse(ev.data);
    if (d.from !== T.seq) {
      T.gaps++; // the server sends a snapshot next
      return;
    }
    applyDelta(d);
    T.frames++;
    schedule(false);
  });
  es.addEventListener("open", () => {
    problem = "";
    status();
  });
  es.addEventListener("error", () => {
    problem = "disconnected, retrying";
    status();
  });
})();
