// The r2r trace page. Every piece of trace data reaches the DOM as text (textContent / createTextNode), never as
// markup; control and bidi-override characters are shown as visible escapes. Nothing is fetched: the data is the JSON
// in the "r2r-data" script element (type application/json), and the Content-Security-Policy forbids any request.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("r2r-data").textContent);
  var CALLS = DATA.calls || [];
  var B_CALLS = DATA.b_calls || [];
  var DIFFS = DATA.diffs || [];
  var PAGE = 50;
  var LONG_TEXT = 20000;
  var state = { rows: [], page: 0, sel: 0, view: "calls", diffPage: 0 };
  var VERDICT_TEXT = { relevant: "relevant", partial: "partial", not_relevant: "not relevant" };
  var STAGE_COLORS = ["#2858b8", "#7a4fc4", "#c2410c", "#0e7490", "#a16207", "#be185d", "#4d7c0f"];
  // C0/C1 controls (but tab and newline), bidi marks, embeddings, overrides and isolates, zero-width joiners aside.
  var UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

  function $(id) { return document.getElementById(id); }

  function escapeCode(ch) {
    var c = ch.charCodeAt(0);
    return c < 0x100 ? "\\x" + ("0" + c.toString(16)).slice(-2) : "\\u" + ("000" + c.toString(16)).slice(-4);
  }

  // Append ``text`` to ``node`` as text, with unsafe characters as visible escapes.
  function addText(node, text) {
    text = String(text);
    UNSAFE.lastIndex = 0;
    var last = 0, m;
    while ((m = UNSAFE.exec(text)) !== null) {
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      var span = document.createElement("span");
      span.className = "ctl";
      span.textContent = escapeCode(m[0]);
      node.appendChild(span);
      last = m.index + 1;
    }
    if (last < text.length) node.appendChild(document.createTextNode(last ? text.slice(last) : text));
    return node;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) addText(e, text);
    return e;
  }

  function cut(text, n) {
    text = String(text == null ? "" : text);
    return text.length > n ? text.slice(0, n) + "\u2026 [" + text.length.toLocaleString() + " characters]" : text;
  }

  // A short label (a model, a run): cut with an ellipsis, the whole of it in the tooltip (as text, escapes kept).
  function label(text, n, prefix) {
    text = String(text);
    var node = el("span", null, (prefix || "") + (text.length > n ? text.slice(0, n - 1) + "\u2026" : text));
    if (text.length > n) node.title = text.replace(UNSAFE, escapeCode);
    return node;
  }

  function num(v, digits) { return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "\u2013"; }

  function secs(v) {
    if (typeof v !== "number" || !isFinite(v)) return "\u2013";
    return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms" : v.toFixed(2) + " s";
  }

  // Python offsets count code points; JS strings index UTF-16 units. The unit index of code point ``cp``.
  function unitIndex(s, cp) {
    var i = 0, n = 0;
    while (i < s.length && n < cp) {
      var c = s.charCodeAt(i);
      var pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      i += pair ? 2 : 1;
      n++;
    }
    return i;
  }

  function verdictBadge(v) {
    var b = el("span", "badge " + (v || ""), v ? VERDICT_TEXT[v] || String(v) : "not judged");
    b.setAttribute("data-verdict", v || "");
    return b;
  }

  function counts(call) {
    var c = { relevant: 0, partial: 0, not_relevant: 0, none: 0 };
    (call.res || []).forEach(function (r) { if (c.hasOwnProperty(r.v)) c[r.v]++; else c.none++; });
    return c;
  }

  function biggestMove(call) {
    var best = null;
    (call.res || []).forEach(function (r) {
      var m = r["in"] - r.rank;
      if (best === null || Math.abs(m) > Math.abs(best.m)) best = { m: m, r: r };
    });
    return best;
  }

  function moveNode(from, to) {
    var m = from - to;
    var wrap = el("span", "move");
    addText(wrap, "in " + from + " \u2192 out " + to + " ");
    var arrow = m > 0 ? el("span", "up", "\u25b2" + m) : m < 0 ? el("span", "down", "\u25bc" + (-m)) : el("span", "same", "=");
    wrap.appendChild(arrow);
    return wrap;
  }

  // -- the index ------------------------------------------------------------------------------------------------------

  function filterRows() {
    var q = $("search").value.toLowerCase();
    var verdict = $("f-verdict").value;
    var unanswerable = $("f-unanswerable").checked;
    var run = $("f-run").value;
    var changed = $("f-changed") && $("f-changed").checked;
    state.rows = [];
    for (var i = 0; i < CALLS.length; i++) {
      var call = CALLS[i];
      if (q && String(call.q).toLowerCase().indexOf(q) < 0) continue;
      if (unanswerable && call.ans !== false) continue;
      if (run && String(call.run || "") !== run) continue;
      if (changed && !(DIFFS[i] && DIFFS[i].changed)) continue;
      if (verdict) {
        var c = call._counts;
        if (verdict === "relevant" && !c.relevant) continue;
        if (verdict === "partial" && !c.partial) continue;
        if (verdict === "not_relevant" && !c.not_relevant) continue;
        if (verdict === "none_relevant" && (c.relevant || c.partial || !c.not_relevant)) continue;
      }
      state.rows.push(i);
    }
    state.page = 0;
    state.sel = 0;
    renderIndex();
    if (state.rows.length) openCall(state.rows[0]); else clear($("detail")).appendChild(el("p", "small", "No call matches the filters."));
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function renderIndex() {
    var list = clear($("calls"));
    var start = state.page * PAGE;
    var rows = state.rows.slice(start, start + PAGE);
    rows.forEach(function (i, k) {
      var call = CALLS[i];
      var row = el("div", "call" + (start + k === state.sel ? " sel" : ""));
      row.setAttribute("data-index", String(i));
      row.setAttribute("role", "option");
      row.appendChild(el("div", "q", cut(call.q, 300)));
      var meta = el("div", "meta");
      meta.appendChild(el("span", null, (call.t || "").replace("T", " ").slice(0, 19)));
      if (call.model) meta.appendChild(label(call.model, 60));
      if (call.run) meta.appendChild(label(call.run, 40, "run "));
      meta.appendChild(el("span", call.ans === false ? "n-not" : call.ans ? "n-rel" : null,
        call.ans === false ? "not answerable" : call.ans ? "answerable" : "answerable: \u2013"));
      var c = call._counts;
      var tally = el("span");
      tally.appendChild(el("span", "n-rel", c.relevant + " rel"));
      addText(tally, " \u00b7 ");
      tally.appendChild(el("span", "n-par", c.partial + " partial"));
      addText(tally, " \u00b7 ");
      tally.appendChild(el("span", "n-not", c.not_relevant + " not"));
      meta.appendChild(tally);
      var big = call._big;
      if (big && big.m !== 0) meta.appendChild(el("span", null, "biggest move " + (big.m > 0 ? "\u25b2" : "\u25bc") + Math.abs(big.m)));
      if (DIFFS[i] && DIFFS[i].changed) meta.appendChild(el("span", "n-par", "differs in B"));
      row.appendChild(meta);
      row.addEventListener("click", function () { state.sel = start + k; markSelected(); openCall(i); });
      list.appendChild(row);
    });
    var pages = Math.max(1, Math.ceil(state.rows.length / PAGE));
    $("pageinfo").textContent = state.rows.length + " of " + CALLS.length + " calls \u00b7 page " + (state.page + 1) + "/" + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function markSelected() {
    var nodes = $("calls").querySelectorAll(".call");
    for (var k = 0; k < nodes.length; k++) nodes[k].classList.toggle("sel", state.page * PAGE + k === state.sel);
    var s = $("calls").querySelector(".call.sel");
    if (s && s.scrollIntoView) s.scrollIntoView({ block: "nearest" });
  }

  function select(pos) {
    if (!state.rows.length) return;
    pos = Math.max(0, Math.min(state.rows.length - 1, pos));
    state.sel = pos;
    var page = Math.floor(pos / PAGE);
    if (page !== state.page) { state.page = page; renderIndex(); } else markSelected();
    openCall(state.rows[pos]);
  }

  // -- one call -------------------------------------------------------------------------------------------------------

  function passageText(r) {
    var box = el("div", "text");
    var text = typeof r.text === "string" ? r.text : null;
    if (text === null) {
      // An old trace, or one written with text off: the preview, and the evidence sentence on its own.
      addText(box, r.preview ? r.preview : "(no text in this trace)");
      box.appendChild(el("div", "small", "The full text is not in this trace (old trace, or written with R2R_TRACE_TEXT=0)."));
      if (r.ev) {
        var lone = el("div");
        var mark = el("mark", "evidence", r.ev);
        lone.appendChild(mark);
        box.appendChild(lone);
      }
      return box;
    }
    var span = Array.isArray(r.span) && r.span.length === 2 ? r.span : null;
    var a = 0, b = 0;
    if (span) { a = unitIndex(text, span[0]); b = unitIndex(text, span[1]); if (b < a) span = null; }
    var from = 0, to = text.length;
    if (text.length > LONG_TEXT) {
      // Show a window around the evidence; the whole text on request.
      from = span ? Math.max(0, a - 2000) : 0;
      to = Math.min(text.length, (span ? b : 0) + 2000);
    }
    function fill(lo, hi) {
      clear(box);
      if (lo > 0) box.appendChild(el("span", "small", "[\u2026 " + lo.toLocaleString() + " characters before] "));
      if (span) {
        addText(box, text.slice(lo, Math.max(lo, a)));
        var mk = el("mark", "evidence");
        mk.setAttribute("data-start", String(span[0]));
        mk.setAttribute("data-end", String(span[1]));
        addText(mk, text.slice(a, b));
        box.appendChild(mk);
        addText(box, text.slice(b, hi));
      } else {
        addText(box, text.slice(lo, hi));
      }
      if (hi < text.length) {
        box.appendChild(el("span", "small", " [" + (text.length - hi).toLocaleString() + " more characters] "));
      }
      if (lo > 0 || hi < text.length) {
        var more = el("button", "link", "show the whole text");
        more.addEventListener("click", function () { fill(0, text.length); });
        box.appendChild(more);
      }
    }
    fill(from, to);
    return box;
  }

  function relevanceBar(r, thr) {
    var bar = el("div", "relbar");
    bar.title = "relevance " + num(r.rel, 2) + (thr && typeof thr.partial === "number" ? " (partial at " + thr.partial + ", relevant at " + thr.relevant + ")" : "");
    var fill = el("div", "fill " + (r.v || ""));
    var value = typeof r.rel === "number" && isFinite(r.rel) ? Math.max(0, Math.min(1, r.rel)) : 0;
    fill.style.width = (value * 100).toFixed(1) + "%";
    bar.appendChild(fill);
    ["partial", "relevant"].forEach(function (k) {
      if (thr && typeof thr[k] === "number") {
        var t = el("div", "tick");
        t.style.left = "calc(" + (Math.max(0, Math.min(1, thr[k])) * 100).toFixed(1) + "% - 1px)";
        t.title = k + " at " + thr[k];
        bar.appendChild(t);
      }
    });
    return bar;
  }

  function costBar(call) {
    var wrap = el("div");
    var parts = [];
    if (typeof call.load === "number" && call.load >= 0.001) parts.push({ name: "model loading", s: call.load });
    (call.stages || []).forEach(function (s) { parts.push({ name: s.stage + " (" + s.items + ")", s: s.seconds, title: s.component }); });
    var known = parts.reduce(function (t, p) { return t + (p.s || 0); }, 0);
    if (typeof call.sec === "number" && call.sec > known + 0.0005) parts.push({ name: "other", s: call.sec - known });
    var total = parts.reduce(function (t, p) { return t + Math.max(0, p.s || 0); }, 0) || 1;
    var bar = el("div", "costs");
    var legend = el("div", "legend");
    parts.forEach(function (p, i) {
      var color = p.name === "other" ? "#c7ccd4" : p.name === "model loading" ? "#6b7280" : STAGE_COLORS[i % STAGE_COLORS.length];
      var seg = el("span");
      seg.style.width = (Math.max(0, p.s) / total * 100).toFixed(2) + "%";
      seg.style.background = color;
      seg.title = p.name + ": " + secs(p.s) + (p.title ? " \u00b7 " + p.title : "");
      bar.appendChild(seg);
      var item = el("span");
      var swatch = el("i");
      swatch.style.background = color;
      item.appendChild(swatch);
      addText(item, cut(p.name, 60) + " " + secs(p.s));
      legend.appendChild(item);
    });
    wrap.appendChild(bar);
    wrap.appendChild(legend);
    return wrap;
  }

  var SVG = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A slope chart: each returned passage from its input position (left) to its output rank (right).
  function slopeChart(call) {
    var res = (call.res || []).slice(0, 20);
    if (!res.length) return el("p", "small", "Nothing was returned.");
    var byInput = res.slice().sort(function (x, y) { return x["in"] - y["in"]; });
    var leftPos = {};
    byInput.forEach(function (r, k) { leftPos[r["in"]] = k; });
    var row = 20, top = 22, h = top + res.length * row + 6, w = 460;
    var svg = svgEl("svg", { "class": "slope", width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img" });
    svg.appendChild(svgEl("title", {}, "input rank (left) to output rank (right) of the returned passages"));
    svg.appendChild(svgEl("text", { x: 40, y: 12, "text-anchor": "middle" }, "input"));
    svg.appendChild(svgEl("text", { x: 300, y: 12, "text-anchor": "middle" }, "output"));
    var colors = { relevant: "#1f7a3a", partial: "#a86b00", not_relevant: "#b3261e" };
    res.forEach(function (r) {
      var y1 = top + leftPos[r["in"]] * row + 8, y2 = top + (r.rank - 1) * row + 8;
      var color = colors[r.v] || "#6b7280";
      var line = svgEl("line", { x1: 56, y1: y1, x2: 284, y2: y2, stroke: color, "stroke-width": Math.abs(r["in"] - r.rank) > 0 ? 2 : 1.2, "stroke-opacity": 0.85 });
      line.appendChild(svgEl("title", {}, "in " + r["in"] + " \u2192 out " + r.rank));
      svg.appendChild(line);
      svg.appendChild(svgEl("circle", { cx: 56, cy: y1, r: 3.5, fill: color }));
      svg.appendChild(svgEl("circle", { cx: 284, cy: y2, r: 3.5, fill: color }));
      svg.appendChild(svgEl("text", { x: 48, y: y1 + 4, "text-anchor": "end" }, "#" + r["in"]));
      var label = String(r.rank) + "  " + cut(r.id == null ? "" : r.id, 22).replace(UNSAFE, "\ufffd");
      svg.appendChild(svgEl("text", { x: 292, y: y2 + 4 }, label));
    });
    return svg;
  }

  function settingsTable(call) {
    var table = el("table", "plain");
    var cfg = call.cfg && typeof call.cfg === "object" ? call.cfg : {};
    var keys = Object.keys(cfg);
    if (!keys.length) return el("p", "small", "The settings were not recorded in this trace.");
    keys.forEach(function (k) {
      var tr = el("tr");
      tr.appendChild(el("th", null, cut(k, 60)));
      tr.appendChild(el("td", null, cut(JSON.stringify(cfg[k]), 300)));
      table.appendChild(tr);
    });
    return table;
  }

  function kv(parent, label, value) {
    if (value === undefined || value === null || value === "") return;
    parent.appendChild(el("span", null, label + ": " + cut(value, 120)));
  }

  function openCall(i) {
    var call = CALLS[i];
    var d = clear($("detail"));
    d.setAttribute("data-call", String(i));
    var h = el("h2", null, cut(call.q, 5000));
    h.id = "query";
    d.appendChild(h);
    var meta = el("div", "kv");
    kv(meta, "time", call.t);
    kv(meta, "model", call.model);
    kv(meta, "adapter", call.adapter);
    kv(meta, "prompts", call.pv);
    kv(meta, "run", call.run);
    kv(meta, "file", DATA.files[call.file]);
    meta.appendChild(el("span", null, call.n + " candidates \u2192 " + (call.top_n == null ? "all" : "top " + call.top_n) + " (" + (call.res || []).length + " returned)"));
    if (typeof call.sec === "number") meta.appendChild(el("span", null, secs(call.sec)));
    if (call.qcut) meta.appendChild(el("span", "badge flag", "query truncated"));
    d.appendChild(meta);
    var ans = call.ans === true ? ["yes", "Answerable: a returned passage answers the query."]
      : call.ans === false ? ["no", "Not answerable: no returned passage answers the query. Search again or say so."]
      : ["unknown", "Answerable: not judged (no calibrator)."];
    d.appendChild(el("div", "answer " + ans[0], ans[1]));
    if (call.cmp) {
      var why = el("div", "why");
      why.appendChild(el("b", null, "Why this order: "));
      addText(why, cut(call.cmp, 20000));
      d.appendChild(why);
    }
    d.appendChild(el("h3", null, "Cost"));
    d.appendChild(costBar(call));
    if (DIFFS[i]) d.appendChild(diffBlock(i, true));
    d.appendChild(el("h3", null, "Input rank \u2192 output rank"));
    d.appendChild(slopeChart(call));
    d.appendChild(el("h3", null, "Returned passages"));
    var list = el("div");
    list.id = "passages";
    (call.res || []).forEach(function (r) {
      var card = el("div", "passage");
      card.setAttribute("data-rank", String(r.rank));
      var head = el("div", "head");
      head.appendChild(el("b", null, "#" + r.rank));
      head.appendChild(moveNode(r["in"], r.rank));
      head.appendChild(verdictBadge(r.v));
      head.appendChild(relevanceBar(r, call.thr));
      head.appendChild(el("span", "small", "relevance " + num(r.rel, 2) + " \u00b7 " + cut(r.stage, 30) + " " + num(r.score, 4)));
      if (r.trunc) head.appendChild(el("span", "badge flag", "truncated"));
      if (r.unsup && r.unsup.length) head.appendChild(el("span", "badge flag", r.unsup.length + " unsupported claim(s) removed"));
      if (r.id != null) head.appendChild(el("span", "pid", cut(r.id, 200)));
      card.appendChild(head);
      if (r.expl !== null && r.expl !== undefined) {
        var e = el("div", "why");
        e.appendChild(el("b", null, "Why: "));
        addText(e, cut(r.expl || "(the explainer wrote nothing)", 20000));
        card.appendChild(e);
      }
      if (r.unsup && r.unsup.length) {
        var u = el("div", "small");
        addText(u, "Removed as unsupported: " + cut(r.unsup.join(" | "), 2000));
        card.appendChild(u);
      }
      card.appendChild(passageText(r));
      list.appendChild(card);
    });
    d.appendChild(list);
    var out = call.out || [];
    if (out.length) {
      d.appendChild(el("h3", null, "Not returned (" + out.length + ")"));
      var table = el("table", "plain");
      var hr = el("tr");
      ["input", "id", "score", "verdict", "relevance", "start of the text"].forEach(function (t) { hr.appendChild(el("th", null, t)); });
      table.appendChild(hr);
      out.slice(0, 200).forEach(function (c) {
        var tr = el("tr");
        tr.appendChild(el("td", null, "#" + c["in"]));
        tr.appendChild(el("td", "pid", cut(c.id == null ? "\u2013" : c.id, 80)));
        tr.appendChild(el("td", null, (c.stage ? cut(c.stage, 20) + " " : "") + num(c.score, 4)));
        var vd = el("td");
        if (c.v) vd.appendChild(verdictBadge(c.v)); else addText(vd, "not judged");
        tr.appendChild(vd);
        tr.appendChild(el("td", null, num(c.rel, 2)));
        tr.appendChild(el("td", null, cut(c.preview || "", 200)));
        table.appendChild(tr);
      });
      d.appendChild(table);
      if (out.length > 200) d.appendChild(el("p", "small", (out.length - 200) + " more not shown."));
    }
    d.appendChild(el("h3", null, "Settings"));
    if (call.thr && typeof call.thr.relevant === "number") {
      d.appendChild(el("p", "small", "Verdict thresholds: partial at relevance " + call.thr.partial + ", relevant at " + call.thr.relevant + "."));
    }
    d.appendChild(settingsTable(call));
    d.scrollTop = 0;
    if (location.hash !== "#call-" + i && history.replaceState) history.replaceState(null, "", "#call-" + i);
  }

  // -- comparing two traces -------------------------------------------------------------------------------------------

  function diffBlock(i, compact) {
    var diff = DIFFS[i];
    var a = CALLS[i], b = B_CALLS[diff.b];
    var box = el("div", "dq");
    box.setAttribute("data-diff", String(i));
    if (!compact) {
      var title = el("button", "link", cut(a.q, 300));
      title.addEventListener("click", function () { showView("calls"); var pos = state.rows.indexOf(i); if (pos >= 0) select(pos); else openCall(i); });
      box.appendChild(title);
    } else {
      box.appendChild(el("b", null, "Compared with B (" + cut(DATA.diff_files.join(", "), 200) + ")"));
    }
    var status = el("div", "kv");
    status.appendChild(el("span", null, "Kendall tau " + num(diff.tau, 3) + " over " + diff.shared + " shared"));
    status.appendChild(el("span", null, "RBO " + num(diff.rbo, 3)));
    status.appendChild(el("span", diff.changed ? "n-par" : null, !diff.changed ? "same list" : diff.reordered ? "reordered" : "same order of shared documents"));
    if (diff.entered.length) status.appendChild(el("span", "entered", diff.entered.length + " entered the top"));
    if (diff.left.length) status.appendChild(el("span", "left", diff.left.length + " left it"));
    var vchanges = diff.shifts.filter(function (s) { return s.va && s.vb && s.va !== s.vb; });
    if (vchanges.length) status.appendChild(el("span", "n-not", vchanges.length + " verdict(s) changed"));
    box.appendChild(status);
    var cols = el("div", "cols");
    [["A", a, diff.left], ["B", b, diff.entered]].forEach(function (side) {
      var col = el("div");
      col.appendChild(el("div", "small", side[0] + ": " + (side[1].run ? "run " + cut(side[1].run, 40) + ", " : "") + cut(side[1].model || "", 60)));
      var t = el("table", "plain");
      (side[1].res || []).slice(0, 20).forEach(function (r) {
        var tr = el("tr");
        var key = diff.keys[side[0]][r.rank - 1];
        tr.appendChild(el("td", null, String(r.rank)));
        var idc = el("td", "pid" + (side[2].indexOf(key) >= 0 ? (side[0] === "A" ? " left" : " entered") : ""), cut(key, 60));
        if (side[2].indexOf(key) >= 0) idc.title = side[0] === "A" ? "not in B's list" : "not in A's list";
        tr.appendChild(idc);
        var vd = el("td");
        vd.appendChild(verdictBadge(r.v));
        tr.appendChild(vd);
        var s = diff.byKey[key];
        var other = side[0] === "A" ? s.rb : s.ra;
        tr.appendChild(el("td", "small", other == null ? (side[0] === "A" ? "left" : "new") : (side[0] === "A" ? "\u2192 B " : "A ") + other));
        t.appendChild(tr);
      });
      col.appendChild(t);
      cols.appendChild(col);
    });
    box.appendChild(cols);
    if (vchanges.length) {
      var vc = el("div", "small");
      addText(vc, "Verdicts changed: " + vchanges.slice(0, 10).map(function (s) {
        return cut(s.key, 40) + " " + (VERDICT_TEXT[s.va] || s.va) + " \u2192 " + (VERDICT_TEXT[s.vb] || s.vb);
      }).join("; "));
      box.appendChild(vc);
    }
    var gone = diff.shifts.filter(function (s) { return s.rb == null; }).slice(0, 5);
    gone.forEach(function (s) {
      var g = el("div", "small");
      addText(g, cut(s.key, 60) + " left the top (A " + s.ra + "): B scored it " + num(s.sb, 4) + (s.vb ? ", " + (VERDICT_TEXT[s.vb] || s.vb) : ", not judged in B"));
      box.appendChild(g);
    });
    return box;
  }

  function renderDiff() {
    var view = clear($("diffview"));
    var idx = [];
    for (var i = 0; i < CALLS.length; i++) if (DIFFS[i]) idx.push(i);
    var s = DATA.diff_summary || {};
    var summary = el("div", "dq");
    summary.id = "diff-summary";
    summary.appendChild(el("b", null, "A: " + cut(DATA.files.join(", "), 300) + "  vs  B: " + cut(DATA.diff_files.join(", "), 300)));
    summary.appendChild(el("p", null, s.compared + " queries in both: " + s.changed + " returned a different list (" + s.reordered +
      " reordered, " + s.membership + " with documents entering or leaving the top), " + s.verdicts + " with a verdict changed; mean Kendall tau over shared documents " +
      num(s.tau, 3) + ", mean RBO " + num(s.rbo, 3) + ". Not compared: " + s.only_a + " only in A, " + s.only_b + " only in B."));
    var onlyChanged = el("label");
    var box = el("input");
    box.type = "checkbox";
    box.id = "diff-changed";
    box.checked = state.diffChanged !== false;
    box.addEventListener("change", function () { state.diffChanged = box.checked; state.diffPage = 0; renderDiff(); });
    onlyChanged.appendChild(box);
    addText(onlyChanged, " only queries whose list changed");
    summary.appendChild(onlyChanged);
    view.appendChild(summary);
    if (box.checked) idx = idx.filter(function (i) { return DIFFS[i].changed; });
    var pages = Math.max(1, Math.ceil(idx.length / PAGE));
    state.diffPage = Math.min(state.diffPage, pages - 1);
    idx.slice(state.diffPage * PAGE, state.diffPage * PAGE + PAGE).forEach(function (i) { view.appendChild(diffBlock(i, false)); });
    var pager = el("div", "pager");
    var prev = el("button", null, "\u2190 previous");
    prev.disabled = state.diffPage === 0;
    prev.addEventListener("click", function () { state.diffPage--; renderDiff(); });
    var next = el("button", null, "next \u2192");
    next.disabled = state.diffPage >= pages - 1;
    next.addEventListener("click", function () { state.diffPage++; renderDiff(); });
    pager.appendChild(prev);
    pager.appendChild(el("span", null, idx.length + " queries \u00b7 page " + (state.diffPage + 1) + "/" + pages));
    pager.appendChild(next);
    view.appendChild(pager);
  }

  function showView(view) {
    state.view = view;
    $("main").classList.toggle("diffmode", view === "diff");
    $("index").classList.toggle("hidden", view === "diff");
    $("detail").classList.toggle("hidden", view === "diff");
    $("diffview").classList.toggle("hidden", view !== "diff");
    $("tab-calls").classList.toggle("on", view === "calls");
    if ($("tab-diff")) $("tab-diff").classList.toggle("on", view === "diff");
    if (view === "diff") renderDiff();
  }

  // -- start ----------------------------------------------------------------------------------------------------------

  function prepare() {
    CALLS.forEach(function (c) { c._counts = counts(c); c._big = biggestMove(c); });
    DIFFS.forEach(function (d) {
      if (!d) return;
      d.byKey = {};
      d.shifts.forEach(function (s) { d.byKey[s.key] = s; });
    });
    var runs = {};
    CALLS.forEach(function (c) { if (c.run) runs[String(c.run)] = true; });
    var sel = $("f-run");
    Object.keys(runs).sort().slice(0, 200).forEach(function (r) {
      var o = el("option", null, cut(r, 60));
      o.value = r;
      sel.appendChild(o);
    });
  }

  function start() {
    prepare();
    var sub = $("sub");
    addText(sub, CALLS.length + " calls from " + cut(DATA.files.join(", "), 300) + (DATA.diff_files.length ? " \u00b7 compared with " + cut(DATA.diff_files.join(", "), 300) : ""));
    if (DATA.skipped_count) {
      var n = $("notice");
      n.classList.remove("hidden");
      addText(n, DATA.skipped_count + " damaged line(s) skipped; the first: " + cut(DATA.skipped[0] || "", 300));
    }
    if (!DATA.diff_files.length) {
      $("tab-diff").classList.add("hidden");
      $("f-changed-label").classList.add("hidden");
    }
    $("search").addEventListener("input", filterRows);
    ["f-verdict", "f-unanswerable", "f-run", "f-changed"].forEach(function (id) { $(id).addEventListener("change", filterRows); });
    $("prev").addEventListener("click", function () { select((state.page - 1) * PAGE); });
    $("next").addEventListener("click", function () { select((state.page + 1) * PAGE); });
    $("tab-calls").addEventListener("click", function () { showView("calls"); });
    $("tab-diff").addEventListener("click", function () { showView("diff"); });
    document.addEventListener("keydown", function (ev) {
      var typing = ev.target && (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT");
      if (ev.key === "Escape") { if (typing) ev.target.blur(); return; }
      if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "/") { ev.preventDefault(); $("search").focus(); }
      else if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(state.sel + 1); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(state.sel - 1); }
      else if (ev.key === "n" || ev.key === "PageDown") { ev.preventDefault(); select((state.page + 1) * PAGE); }
      else if (ev.key === "p" || ev.key === "PageUp") { ev.preventDefault(); select((state.page - 1) * PAGE); }
      else if (ev.key === "d" && DATA.diff_files.length) { showView(state.view === "diff" ? "calls" : "diff"); }
    });
    // Read the fragment before the first render: opening the first call rewrites it to #call-0.
    var asked = location.hash;
    filterRows();
    function follow(hash) {  // #call-N opens call N (links, the back button); #diff the comparison
      var m = /^#call-(\d+)$/.exec(hash);
      if (m && CALLS[+m[1]]) {
        if (state.view !== "calls") showView("calls");
        var pos = state.rows.indexOf(+m[1]);
        if (pos >= 0) select(pos); else openCall(+m[1]);
      } else if (hash === "#diff" && DATA.diff_files.length) showView("diff");
    }
    window.addEventListener("hashchange", function () { follow(location.hash); });
    follow(asked);
    document.body.setAttribute("data-ready", "1");
  }

  start();
})();
