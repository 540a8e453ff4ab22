/* AND atlas: the index page (run facts, per-layer overview, neuron table) and the neuron page
   (hash routing: neuron.html#<layer>/<neuron>). Plain browser JavaScript, no dependencies.
   Data: window.ATLAS_INDEX (data/index.js), window.ATLAS_CLIPS (data/clips.js) and
   window.ATLAS_LAYERS[layer] (data/layer-<i>.js, loaded on demand by a <script> tag, which
   works from file:// where fetch() of local files does not). */
(function () {
  "use strict";

  var INDEX = window.ATLAS_INDEX;
  var SVGNS = "http://www.w3.org/2000/svg";
  var SIM_METHODS = [
    ["description", "the neuron's description (caption-description similarity)"],
    ["random_description", "baseline: a random other neuron's description, same layer"],
    ["label", "baseline: the top clips' majority class name as the whole description"],
    ["label_oracle", "reference: mean activation of the clip's class (no description)"],
    ["missing_label", "sanity: the description without its source phrase (should score lower)"],
    ["extra_label", "sanity: the description with a wrong source added (should score lower)"],
    ["llm", "an LLM rates how well each caption matches the description"]
  ];

  // ---- helpers --------------------------------------------------------------------------
  function h(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "class") node.className = v;
        else node.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  function s(tag, attrs) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) if (arguments[i]) node.appendChild(arguments[i]);
    return node;
  }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, d) { return isNum(x) ? x.toFixed(d === undefined ? 3 : d) : "—"; }
  function pct(x) { return isNum(x) ? (100 * x).toFixed(1) + " %" : "—"; }
  function norm(t) { return String(t || "").toLowerCase().replace(/[_\-\s]+/g, " ").trim(); }
  function escapeRe(t) { return t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }
  function neuronHref(layer, neuron) {
    return "neuron.html#" + encodeURIComponent(layer) + "/" + neuron;
  }
  function kv(pairs) {
    var dl = h("dl", { class: "kv" });
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(h("dt", { text: p[0] }));
      dl.appendChild(h("dd", null, p[1]));
    });
    return dl;
  }
  function chips(items, cls) {
    if (!items || !items.length) return h("span", { class: "muted", text: "none" });
    return items.map(function (t) { return h("span", { class: "chip " + (cls || ""), text: t }); });
  }
  function layerLabel(l) { return l; }

  function header() {
    var f = INDEX.facts;
    var name = document.getElementById("run-name");
    if (name) name.textContent = "· " + f.name + (f.model.model_id ? " · " + f.model.model_id : "");
    var foot = document.getElementById("footer");
    if (foot) {
      foot.textContent = "Built " + f.built + " by andlib (python -m andlib atlas) from the run " +
        "directory's files. Captioner: " + f.captioner + "; K = " + f.k + " clips per end.";
    }
  }

  // ---- small inline-SVG charts -------------------------------------------------------------
  function lineChart(title, labels, series, opts) {
    opts = opts || {};
    var W = opts.width || 360, H = opts.height || 150, L = 38, R = 8, T = 10, B = 26;
    var all = [];
    series.forEach(function (se) { se.values.forEach(function (v) { if (isNum(v)) all.push(v); }); });
    var box = h("div", { class: "chart" }, h("div", { class: "t", text: title }));
    if (!all.length) { box.appendChild(h("div", { class: "muted", text: "not computed" })); return box; }
    var lo = opts.min !== undefined ? opts.min : Math.min(0, Math.min.apply(null, all));
    var hi = Math.max.apply(null, all); if (opts.max !== undefined) hi = Math.max(hi, opts.max);
    if (hi <= lo) hi = lo + 1;
    var n = labels.length;
    function x(i) { return L + (n > 1 ? i * (W - L - R) / (n - 1) : (W - L - R) / 2); }
    function y(v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); }
    var svg = s("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    svg.appendChild(s("title", { text: title }));
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      svg.appendChild(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#ddd" }));
      svg.appendChild(s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", "font-size": 9,
        fill: "#666", text: (Math.abs(hi - lo) < 3 ? v.toFixed(2) : v.toFixed(1)) }));
    });
    var step = Math.max(1, Math.ceil(n / 8));
    labels.forEach(function (lab, i) {
      if (i % step && i !== n - 1) return;
      svg.appendChild(s("text", { x: x(i), y: H - 12, "text-anchor": "middle", "font-size": 8,
        fill: "#666", text: String(lab).replace(/^layers\./, "") }));
    });
    series.forEach(function (se) {
      var d = "";
      se.values.forEach(function (v, i) {
        if (!isNum(v)) return;
        d += (d ? " L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
      });
      if (d) svg.appendChild(s("path", { d: d, fill: "none", stroke: se.color, "stroke-width": 1.6,
        "stroke-dasharray": se.dash || "" }));
      se.values.forEach(function (v, i) {
        if (!isNum(v)) return;
        svg.appendChild(s("circle", { cx: x(i), cy: y(v), r: 2.6, fill: se.color },
          s("title", { text: labels[i] + " · " + se.name + ": " + fmt(v) })));
      });
    });
    box.appendChild(svg);
    if (series.length > 1) {
      box.appendChild(h("div", { class: "t" }, series.map(function (se) {
        return h("span", { style: "color:" + se.color + ";margin-right:10px", text: "● " + se.name });
      })));
    }
    return box;
  }

  function histogram(rec) {
    var hist = rec.hist;
    if (!hist || !hist.counts || !hist.counts.length) return h("p", { class: "muted", text: "no activations recorded" });
    var W = 560, H = 170, L = 40, R = 10, T = 8, B = 30, n = hist.counts.length;
    var max = Math.max.apply(null, hist.counts) || 1;
    var lo = hist.lo, hi = hist.hi;
    function x(v) { return L + (W - L - R) * (v - lo) / (hi - lo); }
    var svg = s("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, id: "histogram", role: "img" });
    svg.appendChild(s("title", { text: "activation histogram over all probing clips" }));
    var bw = (W - L - R) / n;
    hist.counts.forEach(function (c, i) {
      var bh = (H - T - B) * c / max;
      svg.appendChild(s("rect", { x: L + i * bw + 0.5, y: H - B - bh, width: Math.max(bw - 1, 1), height: bh, fill: "#9e9e9e" },
        s("title", { text: fmt(lo + i * (hi - lo) / n) + " … " + fmt(lo + (i + 1) * (hi - lo) / n) + ": " + c + " clips" })));
    });
    [[rec.top, "#c62828"], [rec.bot, "#1565c0"]].forEach(function (p) {
      p[0].forEach(function (c) {
        if (!isNum(c[1])) return;
        svg.appendChild(s("line", { x1: x(c[1]), x2: x(c[1]), y1: T, y2: H - B, stroke: p[1], "stroke-width": 1.2 },
          s("title", { text: c[0] + ": " + fmt(c[1]) })));
      });
    });
    svg.appendChild(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#444" }));
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      svg.appendChild(s("text", { x: x(v), y: H - B + 12, "text-anchor": "middle", "font-size": 10, fill: "#444", text: fmt(v, 2) }));
    });
    svg.appendChild(s("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 10, fill: "#444",
      text: "activation (red: top-K clips, blue: bottom-K clips)" }));
    svg.appendChild(s("text", { x: 10, y: (T + H - B) / 2, "font-size": 10, fill: "#444", "text-anchor": "middle",
      transform: "rotate(-90 10 " + (T + H - B) / 2 + ")", text: "clips" }));
    return svg;
  }

  // ---- index page ---------------------------------------------------------------------------
  function renderFacts() {
    var f = INDEX.facts, m = f.model, p = f.probing, t = f.tagger, hl = f.headline || {};
    var sec = document.getElementById("facts");
    var cards = h("div", { class: "cards" });
    cards.appendChild(h("div", { class: "card", id: "card-model" }, h("h3", { text: "Model" }), kv([
      ["model", m.model_id], ["type", m.model_type], ["kind", m.kind], ["strategy", m.strategy],
      ["parameters", isNum(m.n_parameters) ? m.n_parameters.toLocaleString("en-US") : null],
      ["held-out accuracy", isNum(m.heldout_accuracy) ? pct(m.heldout_accuracy) + (m.heldout_fold ? " (fold " + m.heldout_fold + ")" : "") : null],
      ["train accuracy", isNum(m.train_accuracy) ? pct(m.train_accuracy) : null],
      ["pooling", m.pooling]
    ])));
    cards.appendChild(h("div", { class: "card", id: "card-probing" }, h("h3", { text: "Probing set" }), kv([
      ["dataset", p.dataset], ["clips", p.n_clips], ["classes", p.n_classes],
      ["folds", p.folds ? p.folds.join(", ") : null], ["audio", p.sample_rate + " Hz, " + p.duration + " s"],
      ["skipped files", p.n_skipped]
    ])));
    cards.appendChild(h("div", { class: "card", id: "card-captioner" }, h("h3", { text: "Captioner" }), kv([
      ["captioner", f.captioner], ["tagger", t.tagger], ["cross-fitting", t.cross_fitting],
      ["tagger top-1", isNum(t.top1) ? pct(t.top1) : null], ["tagger top-3", isNum(t.top3) ? pct(t.top3) : null],
      ["source", t.source]
    ])));
    var sim = hl.simulation || {};
    cards.appendChild(h("div", { class: "card", id: "card-headline" }, h("h3", { text: "Headline" }), kv([
      ["simulation r", isNum(sim.description) ? fmt(sim.description) + " (random description " + fmt(sim.random_description) + ")" : null],
      ["pruning ΔA−ΔR", Object.keys(hl.pruning || {}).map(function (k) { return k + " " + fmt(hl.pruning[k]); }).join(" · ") || null]
    ])));
    sec.appendChild(cards);

    var caps = Object.keys(f.last_layer || {});
    if (caps.length) {
      var methods = [];
      caps.forEach(function (c) { Object.keys(f.last_layer[c]).forEach(function (mm) { if (methods.indexOf(mm) < 0) methods.push(mm); }); });
      var labels = f.closed_labels || {};
      var tbl = h("table", { class: "grid", id: "last-layer" },
        h("thead", null, h("tr", null, h("th", { text: "captioner" }), methods.map(function (mm) {
          return h("th", { class: "num", text: labels[mm] || mm });
        }))),
        h("tbody", null, caps.map(function (c) {
          return h("tr", null, h("td", { text: c }), methods.map(function (mm) {
            var r = f.last_layer[c][mm];
            return h("td", { class: "num", title: r ? "top-5 " + pct(r.top5) + ", cos " + fmt(r.cos) + ", " + r.n_neurons + " class neurons" : "" },
              r ? pct(r.top1) : "—");
          }));
        })));
      sec.appendChild(h("h2", { text: "Last layer: top-1 accuracy of each captioner's concepts" }));
      sec.appendChild(h("p", { class: "muted", text: "The classifier neurons' concept against their class (hover a cell for top-5 and embedding cosine)." }));
      sec.appendChild(tbl);
    }
    if (f.pruning && f.pruning.length) {
      sec.appendChild(h("h2", { text: "Concept-specific pruning" }));
      sec.appendChild(h("table", { class: "grid", id: "pruning" },
        h("thead", null, h("tr", null, ["strategy", "concepts", "neurons pruned (mean)", "ΔA−ΔR (mean)", "95 % CI"].map(function (c, i) {
          return h("th", { class: i ? "num" : "", text: c });
        }))),
        h("tbody", null, f.pruning.map(function (r) {
          return h("tr", null, h("td", { text: r.strategy }), h("td", { class: "num", text: r.n_concepts }),
            h("td", { class: "num", text: fmt(r.n_pruned_mean, 1) }), h("td", { class: "num", text: fmt(r.delta_a_minus_r_mean) }),
            h("td", { class: "num", text: "[" + fmt(r.ci_low) + ", " + fmt(r.ci_high) + "]" }));
        }))));
    }
  }

  function renderOverview() {
    var rows = INDEX.layers, sec = document.getElementById("overview");
    var labels = rows.map(function (r) { return r.layer; });
    function col(k) { return rows.map(function (r) { return r[k]; }); }
    sec.appendChild(h("h2", { text: "Layers" }));
    var charts = h("div", { class: "charts", id: "charts" });
    charts.appendChild(lineChart("mean simulation score (Pearson r)", labels, [
      { name: "description", values: col("sim_description"), color: "#0b62c4" },
      { name: "random description", values: col("sim_random"), color: "#9e9e9e", dash: "4 3" }]));
    charts.appendChild(lineChart("polysemantic fraction", labels, [
      { name: "polysemantic", values: col("polysemantic"), color: "#8e24aa" }], { min: 0 }));
    charts.appendChild(lineChart("acoustic adjectives per neuron", labels, [
      { name: "adjectives", values: col("adjectives"), color: "#00897b" }], { min: 0 }));
    charts.appendChild(lineChart("class purity of the top-K clips", labels, [
      { name: "purity", values: col("purity"), color: "#ef6c00" },
      { name: "chance", values: col("purity_chance"), color: "#9e9e9e", dash: "4 3" }], { min: 0 }));
    var methods = [];
    rows.forEach(function (r) { Object.keys(r.spread || {}).forEach(function (m) { if (methods.indexOf(m) < 0) methods.push(m); }); });
    var palette = ["#0b62c4", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#9e9e9e"];
    var closedNames = (INDEX.facts && INDEX.facts.closed_labels) || {};
    if (methods.length) charts.appendChild(lineChart("concept spread: share of the layer's neurons the most common concept names (over 25 % = collapse)", labels,
      methods.map(function (m, i) {
        return { name: closedNames[m] || m, values: rows.map(function (r) { return (r.spread || {})[m]; }), color: palette[i % palette.length] };
      }), { min: 0 }));
    var hidden = rows.some(function (r) { return isNum(r.hidden_top1); });
    if (hidden) charts.appendChild(lineChart("hidden layers: top-1 concept is the class the top clips share", labels, [
      { name: "concept", values: col("hidden_top1"), color: "#0b62c4" },
      { name: "chance (shuffled)", values: col("hidden_chance"), color: "#9e9e9e", dash: "4 3" }], { min: 0 }));
    var pitch = rows.some(function (r) { return isNum(r.pitch_selectivity); });
    if (pitch) charts.appendChild(lineChart("pitch selectivity (semitones, lower = sharper)", labels, [
      { name: "selectivity", values: col("pitch_selectivity"), color: "#6d4c41" }], { min: 0 }));
    sec.appendChild(charts);
    var heads = ["layer", "neurons", "described", "simulation r", "random r", "polysemantic", "adjectives / neuron", "class purity", "chance",
      "most common concept", "its share", "concept entropy (bits)"];
    if (hidden) heads.push("shared-class top-1", "chance");
    if (pitch) heads.push("pitch selectivity");
    sec.appendChild(h("table", { class: "grid", id: "layers" },
      h("thead", null, h("tr", null, heads.map(function (c, i) { return h("th", { class: i ? "num" : "", text: c }); }))),
      h("tbody", null, rows.map(function (r) {
        var cells = [
          h("td", null, h("a", { href: "#layer=" + encodeURIComponent(r.layer), "data-layer": r.layer, class: "layer-link", text: layerLabel(r.layer) })),
          h("td", { class: "num", text: r.n_neurons }), h("td", { class: "num", text: r.n_described }),
          h("td", { class: "num", text: fmt(r.sim_description) }), h("td", { class: "num", text: fmt(r.sim_random) }),
          h("td", { class: "num", text: pct(r.polysemantic) }), h("td", { class: "num", text: fmt(r.adjectives, 2) }),
          h("td", { class: "num", text: pct(r.purity) }), h("td", { class: "num", text: pct(r.purity_chance) }),
          h("td", { text: r.top_concept || "" }), h("td", { class: "num" + (r.top_share > 0.25 ? " warn" : ""), text: pct(r.top_share) }),
          h("td", { class: "num", text: fmt(r.entropy_bits, 2) })];
        if (hidden) cells.push(h("td", { class: "num", text: pct(r.hidden_top1) }), h("td", { class: "num", text: pct(r.hidden_chance) }));
        if (pitch) cells.push(h("td", { class: "num", text: fmt(r.pitch_selectivity, 2) }));
        return h("tr", null, cells);
      }))));
  }

  function renderTable() {
    var cols = INDEX.columns, rows = INDEX.neurons.map(function (r) {
      var o = {}; cols.forEach(function (c, i) { o[c] = r[i]; });
      o.text = " " + norm([o.concept, o.concepts, o.description, o.high, o.adjectives.replace(/;/g, " ")].join(" ")) + " ";
      o.layerPos = 0;
      return o;
    });
    var order = {}; INDEX.layers.forEach(function (l, i) { order[l.layer] = i; });
    rows.forEach(function (r) { r.layerPos = order[r.layer] !== undefined ? order[r.layer] : 1e9; });
    var state = { q: "", layer: "", sort: "layer", dir: 1, limit: 100, metric: "" };
    var metricSelect = document.getElementById("metric"), metricNames = [];
    rows.forEach(function (r) { Object.keys(r.metrics || {}).forEach(function (m) { if (metricNames.indexOf(m) < 0) metricNames.push(m); }); });
    metricNames.sort();
    if (metricSelect) {
      metricNames.forEach(function (m) { metricSelect.appendChild(h("option", { value: m, text: m })); });
      state.metric = metricNames.indexOf("detection auroc") >= 0 ? "detection auroc" : (metricNames[0] || "");
      metricSelect.value = state.metric;
      metricSelect.addEventListener("click", function (ev) { ev.stopPropagation(); });
      metricSelect.addEventListener("change", function () {
        state.metric = metricSelect.value; state.sort = "score"; state.dir = -1; writeHash(); draw();
      });
    }
    function score(r) { var v = (r.metrics || {})[state.metric]; return isNum(v) ? v : null; }
    var search = document.getElementById("search"), filter = document.getElementById("layer-filter");
    var tbody = document.querySelector("#neurons tbody"), count = document.getElementById("count");
    var more = document.getElementById("more");
    INDEX.layers.forEach(function (l) { filter.appendChild(h("option", { value: l.layer, text: l.layer + " (" + l.n_neurons + ")" })); });

    function readHash() {
      var q = {}; location.hash.replace(/^#/, "").split("&").forEach(function (kvp) {
        var i = kvp.indexOf("="); if (i > 0) q[kvp.slice(0, i)] = decodeURIComponent(kvp.slice(i + 1).replace(/\+/g, " "));
      });
      state.q = q.q || ""; state.layer = q.layer || "";
      if (q.sort) { state.sort = q.sort; state.dir = q.dir === "desc" ? -1 : 1; }
      if (q.metric && metricNames.indexOf(q.metric) >= 0) { state.metric = q.metric; if (metricSelect) metricSelect.value = q.metric; }
      search.value = state.q; filter.value = state.layer;
    }
    function writeHash() {
      var parts = [];
      if (state.q) parts.push("q=" + encodeURIComponent(state.q));
      if (state.layer) parts.push("layer=" + encodeURIComponent(state.layer));
      if (state.sort !== "layer" || state.dir !== 1) parts.push("sort=" + state.sort, "dir=" + (state.dir > 0 ? "asc" : "desc"));
      if (state.sort === "score" && state.metric) parts.push("metric=" + encodeURIComponent(state.metric));
      var hash = parts.length ? "#" + parts.join("&") : "";
      if (hash !== location.hash && !(hash === "" && location.hash === "")) history.replaceState(null, "", location.pathname + location.search + hash);
    }
    function key(r, k) {
      if (k === "layer") return [r.layerPos, r.neuron];
      if (k === "neuron") return [r.neuron, r.layerPos];
      if (k === "sim") return [isNum(r.sim) ? r.sim : -Infinity, -r.layerPos];
      if (k === "score") return [score(r) === null ? -Infinity : score(r), -r.layerPos];
      return [String(r[k] || "").toLowerCase(), r.layerPos, r.neuron];
    }
    function cmp(a, b) {
      for (var i = 0; i < a.length; i++) { if (a[i] < b[i]) return -1; if (a[i] > b[i]) return 1; }
      return 0;
    }
    function matches() {
      var q = norm(state.q), re = q ? new RegExp("[^a-z0-9]" + escapeRe(q) + "(?=[^a-z0-9])") : null;
      var hit = rows.filter(function (r) {
        return (!state.layer || r.layer === state.layer) && (!re || re.test(r.text));
      });
      hit.sort(function (a, b) {
        var c = cmp(key(a, state.sort), key(b, state.sort));
        if (state.sort === "sim" && isNum(a.sim) !== isNum(b.sim)) return isNum(a.sim) ? -1 : 1;
        if (state.sort === "score" && (score(a) === null) !== (score(b) === null)) return score(a) === null ? 1 : -1;
        return state.dir * c;
      });
      return hit;
    }
    function draw() {
      var hit = matches();
      tbody.textContent = "";
      hit.slice(0, state.limit).forEach(function (r) {
        var href = neuronHref(r.layer, r.neuron);
        var desc = r.description || "";
        tbody.appendChild(h("tr", { "data-layer": r.layer, "data-neuron": r.neuron },
          h("td", { text: r.layer }),
          h("td", { class: "num" }, h("a", { href: href, class: "neuron-link", text: r.neuron })),
          h("td", null, h("a", { href: href, class: "concept", text: r.concept || "—" })),
          h("td", { class: "desc", title: desc, text: desc.length > 170 ? desc.slice(0, 167) + "…" : desc }),
          h("td", null, chips(r.adjectives ? r.adjectives.split(";") : [], "adj")),
          h("td", { class: "num sim", text: fmt(r.sim) }),
          h("td", { class: "num score", text: fmt(score(r)) })));
      });
      count.textContent = hit.length + " of " + rows.length + " neurons" +
        (hit.length > state.limit ? " (showing " + state.limit + ")" : "");
      more.style.display = hit.length > state.limit ? "" : "none";
      document.querySelectorAll("th[data-sort]").forEach(function (th) {
        th.classList.remove("asc", "desc");
        if (th.getAttribute("data-sort") === state.sort) th.classList.add(state.dir > 0 ? "asc" : "desc");
      });
    }
    search.addEventListener("input", function () { state.q = search.value; state.limit = 100; writeHash(); draw(); });
    filter.addEventListener("change", function () { state.layer = filter.value; state.limit = 100; writeHash(); draw(); });
    more.addEventListener("click", function () { state.limit += 200; draw(); });
    document.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        var k = th.getAttribute("data-sort");
        if (state.sort === k) state.dir = -state.dir; else { state.sort = k; state.dir = (k === "sim" || k === "score") ? -1 : 1; }
        writeHash(); draw();
      });
    });
    document.querySelectorAll("a.layer-link").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault(); state.layer = a.getAttribute("data-layer"); filter.value = state.layer;
        writeHash(); draw(); document.getElementById("table-section").scrollIntoView();
      });
    });
    window.addEventListener("hashchange", function () { readHash(); draw(); });
    readHash(); draw();
  }

  // ---- neuron page --------------------------------------------------------------------------
  function loadLayer(layer, done) {
    var have = window.ATLAS_LAYERS && window.ATLAS_LAYERS[layer];
    if (have) { done(have); return; }
    var file = INDEX.layer_files[layer];
    if (!file) { done(null); return; }
    var tag = h("script", { src: file });
    tag.onload = function () { done(window.ATLAS_LAYERS && window.ATLAS_LAYERS[layer]); };
    tag.onerror = function () { done(null); };
    document.head.appendChild(tag);
  }

  function parseNeuronHash() {
    var raw = location.hash.replace(/^#/, "");
    var i = raw.lastIndexOf("/");
    if (i < 0) return null;
    var layer = decodeURIComponent(raw.slice(0, i)), neuron = parseInt(raw.slice(i + 1), 10);
    return isNaN(neuron) ? null : { layer: layer, neuron: neuron };
  }

  function clipCard(c, rank, end) {
    var info = (window.ATLAS_CLIPS || {})[c[0]] || ["", "", "", "", null];
    var card = h("div", { class: "clip " + end, "data-clip": c[0] });
    if (info[3]) card.appendChild(h("img", { class: "spec", src: info[3], alt: "log-mel spectrogram of " + c[0], title: "log-mel spectrogram, 0–" + fmt(info[4], 1) + " s, low frequencies at the bottom" }));
    if (info[2]) card.appendChild(h("audio", { controls: "controls", preload: "metadata", src: info[2] }));
    else card.appendChild(h("p", { class: "muted", text: "audio not available" }));
    card.appendChild(h("div", { class: "meta" },
      h("b", { text: "#" + (rank + 1) }), " ", h("code", { text: c[0] }),
      info[0] ? " · " : "", info[0] ? h("span", { class: "label", text: info[0] }) : null,
      " · activation ", h("span", { class: "act", text: fmt(c[1]) })));
    card.appendChild(h("div", { class: "cap", text: info[1] || "(no caption)" }));
    return card;
  }

  function renderNeuron() {
    var main = document.getElementById("neuron"), nav = document.getElementById("nav");
    var where = parseNeuronHash();
    if (!where) {
      var first = INDEX.neurons[0];
      if (!first) { main.textContent = "This run has no neurons."; return; }
      location.replace(neuronHref(first[0], first[1])); return;
    }
    loadLayer(where.layer, function (recs) {
      main.textContent = ""; nav.textContent = "";
      var rec = recs && recs[String(where.neuron)];
      var n = recs ? Object.keys(recs).length : 0;
      nav.appendChild(h("a", { href: "index.html", text: "← all neurons" }));
      nav.appendChild(h("a", { href: "index.html#layer=" + encodeURIComponent(where.layer), text: "layer " + where.layer }));
      if (where.neuron > 0) nav.appendChild(h("a", { href: neuronHref(where.layer, where.neuron - 1), id: "prev", text: "← neuron " + (where.neuron - 1) }));
      if (where.neuron + 1 < n) nav.appendChild(h("a", { href: neuronHref(where.layer, where.neuron + 1), id: "next", text: "neuron " + (where.neuron + 1) + " →" }));
      if (!rec) { main.appendChild(h("p", { text: "No neuron " + where.neuron + " in layer " + where.layer + "." })); return; }
      document.title = where.layer + " · " + where.neuron + " · AND atlas";
      main.appendChild(h("h2", { id: "title", text: where.layer + " · neuron " + where.neuron }));
      if (!rec.d) main.appendChild(h("p", { class: "muted", text: "Not described (the concepts stage did not run on it)." }));
      var labels = INDEX.facts.closed_labels || {};
      var primary = INDEX.facts.primary, concept = rec.closed[primary] ? rec.closed[primary][0] : "";
      if (concept) main.appendChild(h("p", null, "Concept (" + (labels[primary] || primary) + "): ", h("b", { id: "concept", text: concept })));
      main.appendChild(h("h3", { text: "Calibrated summary" }));
      main.appendChild(h("div", { class: "summary", id: "calibrated", text: rec.c || "—" }));
      main.appendChild(h("div", { class: "two" },
        h("div", null, h("h3", { text: "Summary of the highly activating clips" }), h("div", { class: "summary", id: "high", text: rec.h || "—" })),
        h("div", null, h("h3", { text: "Summary of the lowly activating clips" }), h("div", { class: "summary", id: "low", text: rec.l || "—" }))));
      main.appendChild(h("div", { class: "two" },
        h("div", null, h("h3", { text: "Acoustic adjectives" }), h("div", { id: "adjectives" }, chips(rec.adj, "adj")),
          h("h3", { text: "Open-set concepts" }), h("div", { id: "open" }, chips(rec.open))),
        h("div", null, h("h3", { text: "Closed-set concepts" }),
          h("table", { class: "grid", id: "closed" },
            h("thead", null, h("tr", null, h("th", { text: "method" }), h("th", { text: "top-1" }), h("th", { text: "top-5" }))),
            h("tbody", null, Object.keys(rec.closed).map(function (k) {
              return h("tr", null, h("td", { text: labels[k] || k }), h("td", null, h("b", { text: rec.closed[k][0] })),
                h("td", { text: rec.closed[k][1].join(", ") }));
            }))))));
      main.appendChild(h("h3", { text: "Simulation score" }));
      var sims = SIM_METHODS.filter(function (m) { return m[0] in rec.sim; });
      if (sims.length) {
        main.appendChild(h("table", { class: "grid", id: "simulation" },
          h("thead", null, h("tr", null, h("th", { text: "predictor" }), h("th", { class: "num", text: "Pearson r with the activation" }), h("th", { text: "what it is" }))),
          h("tbody", null, sims.map(function (m) {
            return h("tr", null, h("td", { text: m[0] }), h("td", { class: "num", text: fmt(rec.sim[m[0]]) }), h("td", { class: "muted", text: m[1] }));
          }))));
      } else {
        main.appendChild(h("p", { class: "muted", text: "Not scored (the evaluate stage samples neurons per layer)." }));
      }
      var scoreKeys = Object.keys(rec.scores || {});
      if (scoreKeys.length) {
        var VARIANTS = ["own", "random", "label", "oracle", "missing_label", "extra_label"];
        main.appendChild(h("h3", { text: "Every score beside its baselines" }));
        main.appendChild(h("table", { class: "grid", id: "scores" },
          h("thead", null, h("tr", null, [h("th", { text: "scorer and metric" })].concat(VARIANTS.map(function (v) {
            return h("th", { class: "num", text: v === "own" ? "own description" : v.replace("_", " ") });
          })))),
          h("tbody", null, scoreKeys.map(function (k) {
            return h("tr", null, [h("td", { text: k })].concat(VARIANTS.map(function (v) {
              return h("td", { class: "num", text: v in rec.scores[k] ? fmt(rec.scores[k][v]) : "" });
            })));
          }))));
      }
      main.appendChild(h("h3", { text: "Activation over the probing clips" }));
      main.appendChild(histogram(rec));
      main.appendChild(h("h3", { text: "Top-" + rec.top.length + " clips (most activating)" }));
      main.appendChild(h("div", { class: "clips", id: "top" }, rec.top.map(function (c, i) { return clipCard(c, i, "high"); })));
      main.appendChild(h("h3", { text: "Bottom-" + rec.bot.length + " clips (least activating)" }));
      main.appendChild(h("div", { class: "clips", id: "bottom" }, rec.bot.map(function (c, i) { return clipCard(c, i, "low"); })));
      document.body.setAttribute("data-ready", where.layer + "/" + where.neuron);
      window.scrollTo(0, 0);
    });
  }

  // ---- start ----------------------------------------------------------------------------------
  function start() {
    if (!INDEX) {
      document.body.appendChild(h("p", { text: "data/index.js is missing: rebuild the atlas (python -m andlib atlas)." }));
      return;
    }
    header();
    var page = document.body.getAttribute("data-page");
    if (page === "index") {
      renderFacts(); renderOverview(); renderTable();
      document.body.setAttribute("data-ready", "index");
    } else if (page === "neuron") {
      renderNeuron();
      window.addEventListener("hashchange", renderNeuron);
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
