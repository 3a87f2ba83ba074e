// Tributary dashboards: plain JavaScript over the JSON API, no build step. Every business number
// comes from the semantic layer (POST /api/v1/metrics), so a page and a SQL query never disagree;
// lists of customers, forecasts and the operations tables come from their own endpoints. Filters
// live in the URL, so a view can be bookmarked and shared.
"use strict";

(() => {
  const AUTH_KEY = "tributary.auth";
  // Who is signed in and the filter choices, kept for a few minutes across full page loads so
  // that opening a page costs only that page's queries.
  const SESSION_KEY = "tributary.session";
  const SESSION_SECONDS = 300;
  const COLORS = ["#1f6feb", "#d4a72c", "#1a7f37", "#cf222e", "#8250df", "#0a7ea4", "#bf5b04", "#57606a"];
  const FILTERS = ["from", "to", "region", "channel", "segment"];
  const state = { me: null, catalogue: null };
  let charts = [];
  let generation = 0;

  // ---- API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, body) {
    const headers = { Accept: "application/json" };
    const auth = sessionStorage.getItem(AUTH_KEY);
    if (auth) headers.Authorization = "Basic " + auth;
    const init = { headers };
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = parse(await response.text());
    if (!response.ok) {
      const error = data && data.error;
      if (response.status === 401) {
        sessionStorage.removeItem(AUTH_KEY);
        go("/login?next=" + encodeURIComponent(location.pathname + location.search));
      }
      throw new ApiError(response.status, error ? error.code : "http_" + response.status, error ? error.message : response.statusText);
    }
    return data;
  }

  /**
   * JSON with integers beyond 2^53 kept exact, as strings: customer keys are 64-bit hashes, and a
   * key rounded to the nearest double opens nobody's profile.
   */
  function parse(text) {
    try {
      return JSON.parse(text, (key, value, context) =>
        typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source) ? context.source : value,
      );
    } catch {
      return null;
    }
  }

  const sql = (text) => api("/api/v1/sql", { sql: text }).then((r) => r.rows);

  /** The page's filters, as the URL has them. */
  function filters() {
    const params = new URLSearchParams(location.search);
    const found = {};
    for (const name of [...FILTERS, "product"]) found[name] = params.get(name) || "";
    if (!found.from || !found.to) {
      const range = state.catalogue && state.catalogue.defaultRange;
      if (range) {
        found.from = found.from || range.from;
        found.to = found.to || range.to;
      }
    }
    return found;
  }

  /**
   * A semantic-layer query with the page's filters: `apply` lists the dimension filters the
   * measures can take (the others are named in the panel's note), `dated` whether the date range
   * applies.
   */
  async function metrics(query, { apply = ["region", "channel", "segment"], dated = true, range } = {}) {
    const f = filters();
    const body = Object.assign({ grain: "month" }, query);
    body.filters = (query.filters || []).slice();
    for (const d of apply) if (f[d]) body.filters.push({ dimension: d, values: [f[d]] });
    if (dated) {
      const r = range || f;
      if (r.from) body.from = r.from;
      if (r.to) body.to = r.to;
    }
    return (await api("/api/v1/metrics", body)).rows;
  }

  function ignoredFilters(apply, dated = true) {
    const f = filters();
    const params = new URLSearchParams(location.search);
    const ignored = ["region", "channel", "segment"].filter((d) => f[d] && !apply.includes(d));
    if (!dated && (params.get("from") || params.get("to"))) ignored.push("date range");
    return ignored.length ? `The ${ignored.join(" and ")} filter does not apply here.` : "";
  }

  // ---- Formatting -----------------------------------------------------------------------------

  const number = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  function num(v) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return Math.abs(n) >= 100 ? number.format(n) : decimal.format(n);
  }
  function short(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return decimal.format(v);
  }
  const pct = (v) => (v === null || v === undefined ? "–" : (Number(v) * 100).toFixed(1) + "%");
  const esc = (s) =>
    String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const day = (d) => new Date(d + "T00:00:00Z");
  const iso = (date) => date.toISOString().slice(0, 10);
  function addDays(text, days) {
    const d = day(text);
    d.setUTCDate(d.getUTCDate() + days);
    return iso(d);
  }
  // The last 26 whole weeks (Monday to Sunday) ending on or before `to`: weekly charts show no
  // cut week, and whole weeks are what the weekly product rollup answers.
  function lastWeeks(to, count = 26) {
    const end = addDays(to, -day(to).getUTCDay());
    return { from: addDays(end, -7 * count + 1), to: end };
  }

  // ---- Building blocks ------------------------------------------------------------------------

  function el(tag, attrs = {}, html = "") {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (html) node.innerHTML = html;
    return node;
  }

  /** A panel that fills itself: `work(body)` resolves to the number of rows it showed. */
  function panel(parent, name, title, work, { wide = false, note = "" } = {}) {
    const section = el("section", { class: "panel" + (wide ? " wide" : ""), "data-panel": name, "data-state": "loading" });
    section.appendChild(el("h2", {}, esc(title)));
    const body = el("div", { class: "body" }, '<p class="note">Loading…</p>');
    section.appendChild(body);
    if (note) section.appendChild(el("p", { class: "note" }, esc(note)));
    parent.appendChild(section);
    const mine = generation;
    return (async () => {
      try {
        const rows = await work(body, section);
        if (mine !== generation) return;
        section.dataset.rows = String(rows);
        section.dataset.state = rows > 0 ? "ready" : "empty";
        if (rows === 0 && !body.querySelector("table, .uplot")) body.innerHTML = '<p class="note">No data for these filters.</p>';
      } catch (error) {
        if (mine !== generation) return;
        section.dataset.state = "error";
        section.dataset.code = error.code || "error";
        body.innerHTML = `<p>${esc(error.message)}</p>`;
      }
    })();
  }

  /** A headline figure against the previous period. */
  function kpi(parent, name, label, current, previous, format, higherIsBetter = true) {
    const section = el("section", { class: "panel kpi", "data-panel": name, "data-state": "ready", "data-rows": "1" });
    let change = "";
    if (previous !== null && previous !== undefined && current !== null && current !== undefined && Number(previous) !== 0) {
      const delta = (Number(current) - Number(previous)) / Math.abs(Number(previous));
      const good = delta === 0 ? "" : (delta > 0) === higherIsBetter ? "up" : "down";
      change = `<div class="change ${good}">${delta >= 0 ? "▲" : "▼"} ${(Math.abs(delta) * 100).toFixed(1)}% vs previous period (${format(previous)})</div>`;
    } else if (previous !== null) {
      change = `<div class="change">previous period: ${format(previous)}</div>`;
    }
    section.innerHTML = `<h2>${esc(label)}</h2><div class="value" data-value="${esc(current)}">${format(current)}</div>${change}`;
    parent.appendChild(section);
  }

  /** Headline figures that could not be fetched: one error panel in their place. */
  function kpiError(kpis, error) {
    kpis.appendChild(el("section", { class: "panel", "data-panel": "kpis", "data-state": "error" }, `<p>${esc(error.message)}</p>`));
  }

  function table(body, columns, rows) {
    const head = columns.map((c) => `<th class="${c.num ? "num" : ""}">${esc(c.label)}</th>`).join("");
    const lines = rows
      .map((r) => "<tr>" + columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.html ? c.html(r) : esc((c.format || ((v) => v))(r[c.key]))}</td>`).join("") + "</tr>")
      .join("");
    const wrap = el("div", { class: "table-scroll" }, `<table><thead><tr>${head}</tr></thead><tbody>${lines}</tbody></table>`);
    body.replaceChildren(wrap);
    return rows.length;
  }

  function chartBox(body) {
    const box = el("div", { class: "chart" });
    body.replaceChildren(box);
    return box;
  }

  function register(chart, box, points) {
    box.dataset.points = String(points);
    charts.push({ chart, box });
    return points;
  }

  /**
   * A time chart: `dates` (YYYY-MM-DD) on x, `series` of {label, values, color, dash, fill}, and
   * `bands` as pairs of series indexes (1-based, upper then lower) to shade between.
   */
  function timeChart(body, dates, series, { bands = [], height = 260 } = {}) {
    const box = chartBox(body);
    const x = dates.map((d) => day(d).getTime() / 1000);
    const options = {
      width: Math.max(box.clientWidth || body.clientWidth || 600, 300),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true } },
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color || COLORS[i % COLORS.length],
          width: s.width === undefined ? 2 : s.width,
          dash: s.dash,
          fill: s.fill,
          points: { show: x.length <= 36 && !s.band },
          value: (u, v) => (s.format || num)(v),
        })),
      ],
      bands: bands.map(([upper, lower], i) => ({ series: [upper, lower], fill: i === 0 ? "rgba(31,111,235,0.10)" : "rgba(31,111,235,0.18)" })),
      axes: [{}, { values: (u, values) => values.map(short), size: 60 }],
    };
    const values = series.map((s) => s.values.map((v) => (v === null || v === undefined ? null : Number(v))));
    const chart = new uPlot(options, [x, ...values], box);
    return register(chart, box, x.length);
  }

  /**
   * The 95% and 80% bounds of a forecast as four series (upper, lower, upper, lower), for a
   * chart whose bands are [[n, n + 1], [n + 2, n + 3]]; `pick(column)` gives a bound's values.
   */
  function intervalSeries(pick) {
    return [
      { label: "Upper 95%", values: pick("upper_95"), color: "rgba(191,91,4,0.3)", width: 1, band: true },
      { label: "Lower 95%", values: pick("lower_95"), color: "rgba(191,91,4,0.3)", width: 1, band: true },
      { label: "Upper 80%", values: pick("upper_80"), color: "rgba(191,91,4,0.5)", width: 1, band: true },
      { label: "Lower 80%", values: pick("lower_80"), color: "rgba(191,91,4,0.5)", width: 1, band: true },
    ];
  }

  /** A bar chart of one measure per label, with optional further series drawn as lines. */
  function barChart(body, labels, series, { height = 240, item = "" } = {}) {
    const box = chartBox(body);
    const x = labels.map((_, i) => i);
    // Bars start at zero, or their lengths lie.
    const fromZero = { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] };
    const slanted = labels.length > 8 || labels.some((l) => String(l).length > 10);
    const bars = uPlot.paths.bars({ size: [0.7, 80] });
    const options = {
      width: Math.max(box.clientWidth || body.clientWidth || 600, 300),
      height,
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: fromZero, rate: fromZero },
      series: [
        { label: item || "Item", value: (u, v) => (v === null ? "" : labels[v]) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color || COLORS[i % COLORS.length],
          fill: i === 0 ? (s.color || COLORS[0]) + "cc" : undefined,
          width: i === 0 ? 1 : 2,
          paths: i === 0 ? bars : undefined,
          points: { show: i !== 0 },
          scale: s.scale || "y",
          value: (u, v) => (s.format || num)(v),
        })),
      ],
      axes: [
        {
          splits: () => x,
          values: (u, values) => values.map((v) => (labels[v] === undefined ? "" : String(labels[v]).slice(0, 14))),
          rotate: slanted ? -30 : 0,
          size: slanted ? 70 : 40,
        },
        { values: (u, values) => values.map(short), size: 60 },
      ],
    };
    for (const s of series) {
      if (s.scale && s.scale !== "rate" && !options.scales[s.scale]) options.scales[s.scale] = fromZero;
    }
    if (series.some((s) => s.scale === "rate")) {
      options.axes.push({ scale: "rate", side: 1, grid: { show: false }, values: (u, values) => values.map((v) => (v * 100).toFixed(0) + "%") });
    }
    const chart = new uPlot(options, [x, ...series.map((s) => s.values.map((v) => (v === null ? null : Number(v))))], box);
    return register(chart, box, labels.length);
  }

  // ---- Pages ----------------------------------------------------------------------------------

  async function overviewPage(main) {
    const f = filters();
    main.appendChild(el("h1", {}, "Overview"));
    const kpis = el("div", { class: "kpis" });
    main.appendChild(kpis);
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const length = Math.round((day(f.to) - day(f.from)) / 86400000);
    const previous = { from: addDays(f.from, -length - 1), to: addDays(f.from, -1) };
    const sales = ["revenue", "gross_margin", "gross_margin_rate", "active_customers"];
    const kpiWork = (async () => {
      const [now, before, churnNow, churnBefore] = await Promise.all([
        metrics({ measures: sales }),
        metrics({ measures: sales }, { range: previous }),
        metrics({ measures: ["churn_rate", "judged_customers"] }, { apply: ["region", "segment"] }),
        metrics({ measures: ["churn_rate", "judged_customers"] }, { apply: ["region", "segment"], range: previous }),
      ]);
      const a = now[0] || {};
      const b = before[0] || {};
      kpi(kpis, "kpi-revenue", "Revenue", a.revenue, b.revenue, short);
      kpi(kpis, "kpi-gross-margin", "Gross margin", a.gross_margin, b.gross_margin, short);
      kpi(kpis, "kpi-gross-margin-rate", "Gross margin rate", a.gross_margin_rate, b.gross_margin_rate, pct);
      kpi(kpis, "kpi-active-customers", "Active customers", a.active_customers, b.active_customers, num);
      kpi(kpis, "kpi-churn-rate", "Churn rate", (churnNow[0] || {}).churn_rate, (churnBefore[0] || {}).churn_rate, pct, false);
    })().catch((error) => kpiError(kpis, error));
    const note = ignoredFilters(["region", "channel", "segment"]);
    const work = [kpiWork];
    work.push(
      panel(grid, "revenue-by-month", "Revenue and gross margin by month", async (body) => {
        const rows = await metrics({ measures: ["revenue", "gross_margin"], dimensions: ["date"], grain: "month" });
        return timeChart(body, rows.map((r) => r.date), [
          { label: "Revenue", values: rows.map((r) => r.revenue) },
          { label: "Gross margin", values: rows.map((r) => r.gross_margin) },
        ]);
      }, { note }),
    );
    work.push(
      panel(grid, "sales-forecast", "Sales forecast against actuals (80% and 95% intervals)", async (body, section) => {
        let level = "total";
        let query = "level=total";
        if (f.region && !f.channel) {
          level = "region";
          query = "level=region&region=" + encodeURIComponent(f.region);
        } else if (f.channel && !f.region) {
          level = "channel";
          query = "level=channel&channel=" + encodeURIComponent(f.channel);
        }
        const apply = level === "region" ? ["region"] : level === "channel" ? ["channel"] : [];
        const [actual, forecast] = await Promise.all([
          metrics({ measures: ["revenue"], dimensions: ["date"], grain: "month" }, { apply, range: { from: f.from } }),
          api("/api/v1/forecasts/sales?" + query).then((r) => r.forecast),
        ]);
        const ignored = ["region", "channel", "segment"].filter((d) => f[d] && !apply.includes(d));
        if (ignored.length) section.appendChild(el("p", { class: "note" }, `Forecasts are kept for the total, each region and each channel: shown for the ${level}, without the ${ignored.join(" and ")} filter.`));
        const months = [...new Set([...actual.map((r) => r.date), ...forecast.map((r) => r.month_start)])].sort();
        const a = new Map(actual.map((r) => [r.date, r.revenue]));
        const p = new Map(forecast.map((r) => [r.month_start, r]));
        const pick = (key) => months.map((m) => (p.has(m) ? p.get(m)[key] : null));
        return timeChart(
          body,
          months,
          [
            { label: "Actual revenue", values: months.map((m) => (a.has(m) ? a.get(m) : null)), color: COLORS[0] },
            { label: "Forecast", values: pick("forecast"), color: COLORS[6], dash: [6, 4] },
            ...intervalSeries(pick),
          ],
          { bands: [[3, 4], [5, 6]] },
        );
      }),
    );
    work.push(
      panel(grid, "revenue-by-channel", "Revenue and margin rate by channel", async (body) => {
        const rows = await metrics({ measures: ["revenue", "gross_margin_rate"], dimensions: ["channel"] });
        return barChart(body, rows.map((r) => r.channel), [
          { label: "Revenue", values: rows.map((r) => r.revenue) },
          { label: "Gross margin rate", values: rows.map((r) => r.gross_margin_rate), scale: "rate", format: pct },
        ]);
      }, { note }),
    );
    work.push(
      panel(grid, "revenue-by-region", "Revenue by region", async (body) => {
        const rows = await metrics({ measures: ["revenue", "orders", "average_order_value"], dimensions: ["region"] });
        return barChart(body, rows.map((r) => r.region), [{ label: "Revenue", values: rows.map((r) => r.revenue) }]);
      }, { note }),
    );
    return Promise.all(work);
  }

  async function customersPage(main) {
    const f = filters();
    main.appendChild(el("h1", {}, "Customers"));
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const snapshotNote = "As of the last refresh. " + ignoredFilters(["region", "segment"], false);
    const work = [];
    work.push(
      panel(grid, "customer-search", "Find a customer", async (body) => {
        body.innerHTML = '<form class="search"><input name="q" type="search" placeholder="Name, CRM account or ERP customer number" aria-label="Customer search"><button>Search</button></form><ul class="results"></ul>';
        const form = body.querySelector("form");
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          const list = body.querySelector("ul");
          list.innerHTML = "<li class=note>Searching…</li>";
          try {
            const found = (await api("/api/v1/customers?limit=15&search=" + encodeURIComponent(form.q.value))).customers;
            list.innerHTML = found.length
              ? found.map((c) => `<li><a href="/customers/${c.customer_key}" data-link>${esc(c.name)}</a> <span class="note">${esc(c.segment)} · ${esc(c.region)} · ${esc(c.crm_account_id || "")} ${esc(c.erp_customer_id || "")}</span></li>`).join("")
              : "<li class=note>No customer matches.</li>";
          } catch (error) {
            list.innerHTML = `<li class="denied">${esc(error.message)}</li>`;
          }
        });
        return 1;
      }),
    );
    work.push(
      panel(grid, "segment-sizes", "Customers by segment", async (body) => {
        const rows = await metrics({ measures: ["customers"], dimensions: ["segment"] }, { apply: ["region", "segment"], dated: false });
        return barChart(body, rows.map((r) => r.segment), [{ label: "Customers", values: rows.map((r) => r.customers) }]);
      }, { note: snapshotNote }),
    );
    work.push(
      panel(grid, "rfm-segments", "Customers by RFM segment", async (body) => {
        const rows = await metrics({ measures: ["customers"], dimensions: ["rfm_segment"], order_by: "customers" }, { apply: ["region", "segment"], dated: false });
        return barChart(body, rows.map((r) => r.rfm_segment), [{ label: "Customers", values: rows.map((r) => r.customers) }]);
      }, { note: snapshotNote }),
    );
    work.push(
      panel(grid, "lifetime-value", "Lifetime value distribution", async (body) => {
        const rows = await metrics({ measures: ["valued_customers", "average_lifetime_value"], dimensions: ["clv_band"] }, { apply: ["region", "segment"], dated: false });
        return barChart(body, rows.map((r) => "≥ " + short(r.clv_band)), [{ label: "Customers", values: rows.map((r) => r.valued_customers) }]);
      }, { note: "Discounted expected margin (BG/NBD and Gamma-Gamma), from the last lifetime job. " + ignoredFilters(["region", "segment"], false) }),
    );
    work.push(
      panel(grid, "cohort-retention", "Cohort retention (share of each first-purchase month buying again, by months since)", async (body) => {
        const rows = await metrics({ measures: ["cohort_retention", "cohort_customers"], dimensions: ["date", "months_since_first"], grain: "month" }, { apply: [] });
        const cohorts = [...new Set(rows.map((r) => r.date))].sort().slice(-18);
        const periods = Math.min(Math.max(0, ...rows.map((r) => Number(r.months_since_first))), 18);
        const cell = new Map(rows.map((r) => [r.date + "/" + r.months_since_first, r]));
        const head = "<tr><th>cohort</th><th class=num>size</th>" + Array.from({ length: periods + 1 }, (_, k) => `<th class=num>${k}</th>`).join("") + "</tr>";
        const lines = cohorts
          .map((c) => {
            const size = (cell.get(c + "/0") || {}).cohort_customers;
            const cells = Array.from({ length: periods + 1 }, (_, k) => {
              const r = cell.get(c + "/" + k);
              if (!r) return "<td></td>";
              const v = Number(r.cohort_retention);
              const shade = k === 0 ? "#dde3ea" : `rgba(31,111,235,${Math.min(1, v * 2.5).toFixed(2)})`;
              const ink = k > 0 && v > 0.25 ? "#fff" : "#1d2733";
              return `<td style="background:${shade};color:${ink}">${(v * 100).toFixed(0)}</td>`;
            }).join("");
            return `<tr><td>${esc(c.slice(0, 7))}</td><td class=num>${num(size)}</td>${cells}</tr>`;
          })
          .join("");
        body.replaceChildren(el("div", { class: "table-scroll" }, `<table class="heatmap" data-points="${rows.length}">${head}${lines}</table>`));
        return rows.length;
      }, { wide: true, note: "Percent of the cohort buying in that month. " + ignoredFilters([]) }),
    );
    work.push(
      panel(grid, "churn-risks", "Top churn risks and their reasons", async (body) => {
        const params = new URLSearchParams({ limit: "15" });
        if (f.region) params.set("region", f.region);
        if (f.segment) params.set("segment", f.segment);
        const rows = (await api("/api/v1/churn?" + params)).customers;
        return table(body, [
          { label: "customer", html: (r) => `<a href="/customers/${r.customer_key}" data-link>${esc(r.name || r.customer_key)}</a>` },
          { label: "segment", key: "segment" },
          { label: "region", key: "region" },
          { label: "churn score", key: "churn_score", num: true, format: pct },
          { label: "band", key: "risk_band" },
          { label: "reasons", html: (r) => esc([r.reason_1, r.reason_2, r.reason_3].filter(Boolean).join("; ")) },
        ], rows);
      }, { wide: true, note: ignoredFilters(["region", "segment"], false) }),
    );
    return Promise.all(work);
  }

  const SECTION_TITLES = {
    customer: "Customer",
    profiling: "Profiling",
    persistency: "Persistency (loyalty)",
    profitability: "Profitability",
    performance: "Performance",
    prospecting: "Prospecting (future value)",
    product: "Product",
    promotion: "Promotion",
  };

  function profileValue(name, v) {
    if (v === null || v === undefined) return "–";
    if (/(_key|_id)$/.test(name)) return String(v);
    if (typeof v === "number" && (/rate|share|p_alive|churn_score/.test(name))) return pct(v);
    if (typeof v === "number") return num(v);
    if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v)) return num(v);
    return String(v);
  }

  async function profilePage(main, key) {
    main.appendChild(el("p", {}, '<a href="/customers" data-link>← Customers</a>'));
    const title = el("h1", {}, "Customer " + esc(key));
    main.appendChild(title);
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const profile = api("/api/v1/customers/" + encodeURIComponent(key) + "/profile");
    const work = [];
    work.push(
      panel(grid, "seven-p", "The 7P profile", async (body) => {
        const p = await profile;
        title.textContent = `${p.customer.name} (${p.customer.customer_key})`;
        const cards = Object.entries(SECTION_TITLES)
          .map(([section, label]) => {
            const fields = p[section] || {};
            const items = Object.entries(fields).map(([k, v]) => `<dt>${esc(k.replace(/_/g, " "))}</dt><dd>${esc(profileValue(k, v))}</dd>`).join("");
            return `<div class="panel" data-section="${section}"><h2>${esc(label)}</h2><dl>${items}</dl></div>`;
          })
          .join("");
        body.innerHTML = `<div class="sevenp">${cards}</div>`;
        return Object.keys(SECTION_TITLES).filter((s) => p[s]).length;
      }, { wide: true }),
    );
    work.push(
      panel(grid, "customer-history", "Net sales by month", async (body) => {
        const history = (await profile).history || [];
        return barChart(body, history.map((r) => r.month.slice(0, 7)), [
          { label: "Net sales", values: history.map((r) => r.net_sales) },
          { label: "Orders", values: history.map((r) => r.orders), scale: "orders" },
        ]);
      }),
    );
    work.push(
      panel(grid, "category-mix", "Category mix", async (body) => {
        const mix = (await profile).category_mix || [];
        return table(body, [
          { label: "category", key: "category" },
          { label: "orders", key: "orders", num: true, format: num },
          { label: "net sales", key: "net_sales", num: true, format: num },
          { label: "share", key: "share", num: true, format: pct },
        ], mix);
      }),
    );
    return Promise.all(work);
  }

  async function productsPage(main) {
    const f = filters();
    main.appendChild(el("h1", {}, "Products"));
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const top = metrics({ measures: ["revenue", "units", "gross_margin_rate"], dimensions: ["product"], order_by: "revenue", limit: 15 });
    const chosen = top.then((rows) => f.product || (rows[0] && rows[0].product) || "");
    const work = [];
    work.push(
      panel(grid, "top-products", "Top products by revenue", async (body, section) => {
        const rows = await top;
        const product = await chosen;
        const picker = el("label", { class: "note" }, "Product shown below: ");
        const select = el("select", { name: "product", "aria-label": "Product" });
        select.innerHTML = [...new Set([product, ...rows.map((r) => r.product)])].map((p) => `<option${p === product ? " selected" : ""}>${esc(p)}</option>`).join("");
        select.addEventListener("change", () => setParam("product", select.value));
        picker.appendChild(select);
        section.insertBefore(picker, body);
        return barChart(body, rows.map((r) => r.product), [
          { label: "Revenue", values: rows.map((r) => r.revenue) },
          { label: "Gross margin rate", values: rows.map((r) => r.gross_margin_rate), scale: "rate", format: pct },
        ]);
      }, { wide: true, note: ignoredFilters(["region", "channel", "segment"]) }),
    );
    const forecast = chosen.then((sku) => (sku ? api("/api/v1/forecasts/demand?sku=" + encodeURIComponent(sku)).then((r) => r.forecast) : []));
    const productForecast = forecast.then((rows) => {
      const wanted = f.region ? rows.filter((r) => r.region === f.region) : rows.filter((r) => r.region === null || r.region === undefined);
      return wanted.length ? wanted : rows;
    });
    work.push(
      panel(grid, "demand-forecast", "Weekly demand and its forecast (80% and 95% intervals)", async (body) => {
        const sku = await chosen;
        const [history, ahead] = await Promise.all([
          metrics({ measures: ["units"], dimensions: ["date"], grain: "week", filters: [{ dimension: "product", values: [sku] }] }, { apply: ["region"], range: lastWeeks(f.to) }),
          productForecast,
        ]);
        const weeks = [...new Set([...history.map((r) => r.date), ...ahead.map((r) => r.week_start)])].sort();
        const h = new Map(history.map((r) => [r.date, r.units]));
        const p = new Map(ahead.map((r) => [r.week_start, r]));
        const pick = (k) => weeks.map((w) => (p.has(w) ? p.get(w)[k] : null));
        return timeChart(body, weeks, [
          { label: `Units of ${sku}`, values: weeks.map((w) => (h.has(w) ? h.get(w) : null)) },
          { label: "Forecast", values: pick("forecast"), color: COLORS[6], dash: [6, 4] },
          ...intervalSeries(pick),
        ], { bands: [[3, 4], [5, 6]] });
      }, { note: "The last 26 whole weeks to the end of the date range, then the forecast. " + ignoredFilters(["region"], false) }),
    );
    work.push(
      panel(grid, "stock-vs-forecast", "Stock on hand against forecast demand", async (body, section) => {
        const sku = await chosen;
        const [stock, ahead] = await Promise.all([
          metrics({ measures: ["stock_on_hand", "stock_on_order"], dimensions: ["date"], grain: "week", filters: [{ dimension: "product", values: [sku] }] }, { apply: [], range: lastWeeks(f.to) }),
          productForecast,
        ]);
        const weeks = [...new Set([...stock.map((r) => r.date), ...ahead.map((r) => r.week_start)])].sort();
        const s = new Map(stock.map((r) => [r.date, r]));
        const p = new Map(ahead.map((r) => [r.week_start, r.forecast]));
        const last = stock.length ? Number(stock[stock.length - 1].stock_on_hand) : null;
        const weekly = ahead.length ? ahead.reduce((t, r) => t + Number(r.forecast), 0) / ahead.length : null;
        if (last !== null && weekly) section.appendChild(el("p", { class: "note", "data-cover": (last / weekly).toFixed(1) }, `Latest stock covers ${(last / weekly).toFixed(1)} weeks of forecast demand.`));
        return timeChart(body, weeks, [
          { label: "Stock on hand", values: weeks.map((w) => (s.has(w) ? s.get(w).stock_on_hand : null)) },
          { label: "On order", values: weeks.map((w) => (s.has(w) ? s.get(w).stock_on_order : null)), color: COLORS[4] },
          { label: "Forecast weekly demand", values: weeks.map((w) => (p.has(w) ? p.get(w) : null)), color: COLORS[6], dash: [6, 4] },
        ]);
      }, { note: "Stock is averaged over the snapshot days of each week, all locations. " + ignoredFilters([], false) }),
    );
    work.push(
      panel(grid, "bought-together", "Frequently bought together", async (body) => {
        const sku = await chosen;
        const rows = await metrics({ measures: ["orders_together", "association_confidence"], dimensions: ["product", "bought_with"], filters: [{ dimension: "product", values: [sku] }], order_by: "orders_together", limit: 10 }, { apply: [], dated: false });
        return table(body, [
          { label: "product", key: "product" },
          { label: "bought with", key: "bought_with" },
          { label: "orders with both", key: "orders_together", num: true, format: num },
          { label: "confidence", key: "association_confidence", num: true, format: pct },
        ], rows);
      }, { note: "Over every order to the last refresh. " + ignoredFilters([], false) }),
    );
    return Promise.all(work);
  }

  async function campaignsPage(main) {
    main.appendChild(el("h1", {}, "Campaigns"));
    const kpis = el("div", { class: "kpis" });
    main.appendChild(kpis);
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const response = ["touches", "responses", "conversions", "attributed_revenue", "response_rate", "conversion_rate", "control_conversion_rate"];
    const costs = ["campaign_cost", "campaigns"];
    const byCampaign = Promise.all([
      metrics({ measures: response, dimensions: ["campaign"] }, { apply: ["region", "channel", "segment"] }),
      metrics({ measures: costs, dimensions: ["campaign"] }, { apply: ["channel"] }),
    ]).then(([touch, cost]) => {
      const c = new Map(cost.map((r) => [r.campaign, r]));
      return touch.map((r) => {
        const spend = c.has(r.campaign) ? Number(c.get(r.campaign).campaign_cost) : null;
        const lift = r.conversion_rate !== null && r.control_conversion_rate !== null ? r.conversion_rate - r.control_conversion_rate : null;
        return Object.assign({}, r, { campaign_cost: spend, lift, roi: spend ? (Number(r.attributed_revenue) - spend) / spend : null });
      });
    });
    const work = [];
    work.push(
      (async () => {
        const [total, cost] = await Promise.all([
          metrics({ measures: ["touches", "conversions", "attributed_revenue", "conversion_rate", "control_conversion_rate"] }),
          metrics({ measures: ["campaign_cost", "return_on_cost"] }, { apply: ["channel"] }),
        ]);
        const t = total[0] || {};
        const k = cost[0] || {};
        kpi(kpis, "kpi-touches", "Touches", t.touches, null, num);
        kpi(kpis, "kpi-conversion-rate", "Conversion rate", t.conversion_rate, t.control_conversion_rate, pct);
        kpis.lastChild.querySelector(".change").textContent = `control group: ${pct(t.control_conversion_rate)} (lift ${t.conversion_rate !== null && t.control_conversion_rate !== null ? ((t.conversion_rate - t.control_conversion_rate) * 100).toFixed(1) + " points" : "–"})`;
        kpi(kpis, "kpi-attributed-revenue", "Attributed revenue", t.attributed_revenue, null, short);
        kpi(kpis, "kpi-return-on-cost", "Revenue per unit of cost", k.return_on_cost, null, (v) => (v === null || v === undefined ? "–" : decimal.format(v) + "×"));
      })().catch((error) => kpiError(kpis, error)),
    );
    work.push(
      panel(grid, "campaign-roi", "Attributed revenue and cost by campaign", async (body) => {
        const rows = (await byCampaign).slice(0, 20);
        return barChart(body, rows.map((r) => r.campaign), [
          { label: "Attributed revenue", values: rows.map((r) => r.attributed_revenue) },
          { label: "Cost", values: rows.map((r) => r.campaign_cost) },
        ]);
      }, { wide: true, note: "Cost is by campaign start date; touches by send date. " + ignoredFilters(["region", "channel", "segment"]) }),
    );
    work.push(
      panel(grid, "campaign-table", "Touches, response, conversion, lift and ROI", async (body) => {
        const rows = await byCampaign;
        return table(body, [
          { label: "campaign", key: "campaign" },
          { label: "touches", key: "touches", num: true, format: num },
          { label: "response", key: "response_rate", num: true, format: pct },
          { label: "conversion", key: "conversion_rate", num: true, format: pct },
          { label: "control conv.", key: "control_conversion_rate", num: true, format: pct },
          { label: "lift (points)", key: "lift", num: true, format: (v) => (v === null ? "–" : (v * 100).toFixed(1)) },
          { label: "attributed revenue", key: "attributed_revenue", num: true, format: num },
          { label: "cost", key: "campaign_cost", num: true, format: num },
          { label: "ROI", key: "roi", num: true, format: pct },
        ], rows);
      }, { wide: true }),
    );
    work.push(
      panel(grid, "touches-by-month", "Touches and conversions by month", async (body) => {
        const rows = await metrics({ measures: ["touches", "conversions"], dimensions: ["date"], grain: "month" });
        return timeChart(body, rows.map((r) => r.date), [
          { label: "Touches", values: rows.map((r) => r.touches) },
          { label: "Conversions", values: rows.map((r) => r.conversions) },
        ]);
      }),
    );
    work.push(
      panel(grid, "touches-by-channel", "Conversion rate by channel", async (body) => {
        const rows = await metrics({ measures: ["touches", "conversion_rate"], dimensions: ["channel"] });
        return barChart(body, rows.map((r) => r.channel), [
          { label: "Touches", values: rows.map((r) => r.touches) },
          { label: "Conversion rate", values: rows.map((r) => r.conversion_rate), scale: "rate", format: pct },
        ]);
      }),
    );
    return Promise.all(work);
  }

  async function pipelinePage(main) {
    main.appendChild(el("h1", {}, "Pipeline"));
    const kpis = el("div", { class: "kpis" });
    main.appendChild(kpis);
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const opportunityFilters = { apply: ["region", "segment"] };
    const work = [];
    work.push(
      (async () => {
        const [o, l] = await Promise.all([
          metrics({ measures: ["opportunities", "open_pipeline", "weighted_pipeline", "win_rate", "won_amount"] }, opportunityFilters),
          metrics({ measures: ["leads", "lead_conversion_rate"] }, { apply: [] }),
        ]);
        const a = o[0] || {};
        const b = l[0] || {};
        kpi(kpis, "kpi-open-pipeline", "Open pipeline", a.open_pipeline, null, short);
        kpi(kpis, "kpi-weighted-pipeline", "Weighted pipeline", a.weighted_pipeline, null, short);
        kpi(kpis, "kpi-win-rate", "Win rate", a.win_rate, null, pct);
        kpi(kpis, "kpi-lead-conversion", "Lead conversion", b.lead_conversion_rate, null, pct);
      })().catch((error) => kpiError(kpis, error)),
    );
    const note = "Opportunities created in the date range. " + ignoredFilters(["region", "segment"]);
    work.push(
      panel(grid, "pipeline-by-stage", "Pipeline by stage", async (body, section) => {
        const rows = await metrics({ measures: ["opportunities", "open_pipeline", "weighted_pipeline", "win_rate"], dimensions: ["stage"] }, opportunityFilters);
        const tableBox = el("div");
        section.appendChild(tableBox);
        table(tableBox, [
          { label: "stage", key: "stage" },
          { label: "opportunities", key: "opportunities", num: true, format: num },
          { label: "open amount", key: "open_pipeline", num: true, format: num },
          { label: "weighted", key: "weighted_pipeline", num: true, format: num },
        ], rows);
        return barChart(body, rows.map((r) => r.stage), [
          { label: "Opportunities", values: rows.map((r) => r.opportunities) },
          { label: "Weighted pipeline", values: rows.map((r) => r.weighted_pipeline), scale: "amount" },
        ]);
      }, { note }),
    );
    work.push(
      panel(grid, "opportunities-by-month", "Opportunities created and won by month", async (body) => {
        const rows = await metrics({ measures: ["opportunities", "won_opportunities", "win_rate"], dimensions: ["date"], grain: "month" }, opportunityFilters);
        return timeChart(body, rows.map((r) => r.date), [
          { label: "Created", values: rows.map((r) => r.opportunities) },
          { label: "Won", values: rows.map((r) => r.won_opportunities), color: COLORS[2] },
        ]);
      }, { note }),
    );
    work.push(
      panel(grid, "leads-by-source", "Leads by source", async (body) => {
        const rows = await metrics({ measures: ["leads", "converted_leads", "lead_conversion_rate"], dimensions: ["lead_source"], order_by: "leads" }, { apply: [] });
        return barChart(body, rows.map((r) => r.lead_source), [
          { label: "Leads", values: rows.map((r) => r.leads) },
          { label: "Conversion rate", values: rows.map((r) => r.lead_conversion_rate), scale: "rate", format: pct },
        ]);
      }, { note: "Leads created in the date range. " + ignoredFilters([]) }),
    );
    work.push(
      panel(grid, "leads-by-status", "Leads by status", async (body) => {
        const rows = await metrics({ measures: ["leads", "converted_leads"], dimensions: ["lead_status"], order_by: "leads" }, { apply: [] });
        return table(body, [
          { label: "status", key: "lead_status" },
          { label: "leads", key: "leads", num: true, format: num },
          { label: "converted", key: "converted_leads", num: true, format: num },
        ], rows);
      }),
    );
    return Promise.all(work);
  }

  async function operationsPage(main) {
    main.appendChild(el("h1", {}, "Operations"));
    if (state.me.role !== "admin") {
      main.appendChild(el("p", { class: "denied", "data-denied": "operations" }, `Operations needs the admin role; ${esc(state.me.user)} has the ${esc(state.me.role)} role.`));
      return [];
    }
    const grid = el("div", { class: "grid" });
    main.appendChild(grid);
    const tables = api("/api/v1/tables").then((r) => r.tables);
    const work = [];
    work.push(
      panel(grid, "table-freshness", "Table freshness", async (body) => {
        const now = Date.now();
        const age = (t) => {
          if (!t) return "–";
          const minutes = Math.round((now - Date.parse(t)) / 60000);
          return minutes < 60 ? `${minutes} min` : minutes < 2880 ? `${Math.round(minutes / 60)} h` : `${Math.round(minutes / 1440)} days`;
        };
        return table(body, [
          { label: "table", key: "table" },
          { label: "version", key: "version", num: true },
          { label: "updated", key: "updated_at", format: (v) => (v ? v.slice(0, 19).replace("T", " ") : "–") },
          { label: "age", key: "updated_at", num: true, format: age },
        ], await tables);
      }),
    );
    work.push(
      panel(grid, "ingest-batches", "Ingest batches by pipeline", async (body, section) => {
        const rows = await sql(
          "SELECT pipeline, COUNT(*) AS batches, SUM(rows_read) AS rows_read, SUM(rows_stored) AS rows_stored, " +
            "SUM(rows_quarantined) AS rows_quarantined, SUM(rows_duplicate) AS rows_duplicate, " +
            "CAST(MAX(finished_at) AS VARCHAR) AS last_batch FROM system.ingest_log GROUP BY pipeline ORDER BY pipeline",
        );
        const tableBox = el("div");
        section.appendChild(tableBox);
        table(tableBox, [
          { label: "pipeline", key: "pipeline" },
          { label: "batches", key: "batches", num: true, format: num },
          { label: "stored", key: "rows_stored", num: true, format: num },
          { label: "quarantined", key: "rows_quarantined", num: true, format: num },
          { label: "duplicates", key: "rows_duplicate", num: true, format: num },
          { label: "last batch", key: "last_batch", format: (v) => (v || "").slice(0, 19) },
        ], rows);
        return barChart(body, rows.map((r) => r.pipeline), [
          { label: "Rows stored", values: rows.map((r) => r.rows_stored) },
          { label: "Rows quarantined", values: rows.map((r) => r.rows_quarantined), scale: "quarantine", color: COLORS[3] },
        ]);
      }, { wide: true }),
    );
    work.push(
      panel(grid, "quarantine", "Quarantined rows by pipeline and field", async (body) => {
        // The table appears with the first row quarantined.
        if (!(await tables).some((t) => t.table === "system.quarantine")) {
          body.innerHTML = '<p class="note">No row has been quarantined.</p>';
          return 0;
        }
        const rows = await sql(
          "SELECT pipeline, COALESCE(field, '(row)') AS field, COUNT(*) AS rows, MIN(reason) AS example_reason " +
            "FROM system.quarantine GROUP BY 1, 2 ORDER BY rows DESC, pipeline, field LIMIT 20",
        );
        return table(body, [
          { label: "pipeline", key: "pipeline" },
          { label: "field", key: "field" },
          { label: "rows", key: "rows", num: true, format: num },
          { label: "for example", key: "example_reason", format: (v) => String(v || "").slice(0, 80) },
        ], rows);
      }),
    );
    work.push(
      panel(grid, "job-runs", "Job runs", async (body) => {
        const rows = await sql(
          "SELECT job, CAST(run_date AS VARCHAR) AS run_date, status, CAST(started_at AS VARCHAR) AS started_at, " +
            "CAST(date_part('epoch', finished_at) - date_part('epoch', started_at) AS DOUBLE) AS seconds, output_table, rows, message " +
            "FROM system.job_run ORDER BY started_at DESC LIMIT 20",
        );
        return table(body, [
          { label: "job", key: "job" },
          { label: "started", key: "started_at", format: (v) => (v || "").slice(0, 19) },
          { label: "status", key: "status" },
          { label: "seconds", key: "seconds", num: true, format: num },
          { label: "table", key: "output_table" },
          { label: "rows", key: "rows", num: true, format: num },
          { label: "message", key: "message", format: (v) => String(v || "").slice(0, 60) },
        ], rows);
      }),
    );
    work.push(
      panel(grid, "slow-queries", "Slowest queries", async (body) => {
        const rows = await sql(
          "SELECT CAST(started_at AS VARCHAR) AS started_at, user_name, protocol, duration_ms, rows, outcome, sql " +
            "FROM system.query_log ORDER BY duration_ms DESC LIMIT 10",
        );
        return table(body, [
          { label: "started", key: "started_at", format: (v) => (v || "").slice(0, 19) },
          { label: "user", key: "user_name" },
          { label: "via", key: "protocol" },
          { label: "ms", key: "duration_ms", num: true, format: num },
          { label: "rows", key: "rows", num: true, format: num },
          { label: "outcome", key: "outcome" },
          { label: "SQL", key: "sql", format: (v) => String(v || "").slice(0, 90) },
        ], rows);
      }, { wide: true }),
    );
    return Promise.all(work);
  }

  // ---- Sign-in, filters and routing ---------------------------------------------------------

  function loginPage(main) {
    document.getElementById("filters").hidden = true;
    const next = new URLSearchParams(location.search).get("next") || "/overview";
    main.innerHTML = `<form class="login" id="login"><h1>Sign in to Tributary</h1>
      <label>User <input name="user" autocomplete="username" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <p class="error" id="login-error"></p><button type="submit">Sign in</button></form>`;
    const form = main.querySelector("form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = btoa(unescape(encodeURIComponent(form.user.value + ":" + form.password.value)));
      const response = await fetch("/api/v1/me", { headers: { Authorization: "Basic " + token } });
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        document.getElementById("login-error").textContent = data && data.error ? data.error.message : "sign-in failed";
        return;
      }
      sessionStorage.setItem(AUTH_KEY, token);
      sessionStorage.removeItem(SESSION_KEY);
      state.me = null;
      state.catalogue = null;
      go(next.startsWith("/") ? next : "/overview");
    });
    document.body.dataset.ready = "login";
    return [];
  }

  function loadSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && saved.auth === (sessionStorage.getItem(AUTH_KEY) || "") && Date.now() - saved.at < SESSION_SECONDS * 1000) {
        state.me = saved.me;
        state.catalogue = saved.catalogue;
      }
    } catch {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }

  function saveSession() {
    const auth = sessionStorage.getItem(AUTH_KEY) || "";
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ auth, at: Date.now(), me: state.me, catalogue: state.catalogue }));
  }

  /** Filter choices and the default date range, once per sign-in. */
  async function catalogue() {
    if (state.catalogue) return state.catalogue;
    const [months, values] = await Promise.all([
      api("/api/v1/metrics", { measures: ["revenue"], dimensions: ["date"], grain: "month" }).then((r) => r.rows),
      api("/api/v1/metrics", { measures: ["revenue"], dimensions: ["region", "channel", "segment"] }).then((r) => r.rows),
    ]);
    const last = months.length ? months[months.length - 1].date : iso(new Date());
    const end = day(last);
    end.setUTCMonth(end.getUTCMonth() + 1);
    end.setUTCDate(0);
    const start = day(last);
    start.setUTCMonth(start.getUTCMonth() - 11);
    const distinct = (k) => [...new Set(values.map((r) => r[k]).filter((v) => v !== null))].sort();
    state.catalogue = {
      defaultRange: { from: iso(start), to: iso(end) },
      first: months.length ? months[0].date : null,
      region: distinct("region"),
      channel: distinct("channel"),
      segment: distinct("segment"),
    };
    return state.catalogue;
  }

  function setParam(name, value) {
    const params = new URLSearchParams(location.search);
    if (value) params.set(name, value);
    else params.delete(name);
    const query = params.toString();
    go(location.pathname + (query ? "?" + query : ""));
  }

  function showFilters(cat) {
    const form = document.getElementById("filters");
    form.hidden = false;
    const f = filters();
    for (const name of ["region", "channel", "segment"]) {
      const select = form.elements[name];
      if (select.options.length <= 1) {
        for (const v of cat[name]) select.appendChild(el("option", { value: v }, esc(v)));
      }
      select.value = f[name];
    }
    form.elements.from.value = f.from;
    form.elements.to.value = f.to;
    if (!form.dataset.bound) {
      form.dataset.bound = "1";
      form.addEventListener("change", (event) => setParam(event.target.name, event.target.value));
    }
  }

  function go(path) {
    history.pushState(null, "", path);
    route();
  }

  const PAGES = {
    overview: overviewPage,
    customers: customersPage,
    products: productsPage,
    campaigns: campaignsPage,
    pipeline: pipelinePage,
    operations: operationsPage,
  };

  async function route() {
    generation += 1;
    const mine = generation;
    const started = performance.now();
    delete document.body.dataset.ready;
    for (const { chart } of charts) chart.destroy();
    charts = [];
    const main = document.getElementById("page");
    main.replaceChildren();
    const parts = location.pathname.split("/").filter(Boolean);
    if (parts[0] === "login") return loginPage(main);
    const signInRequired = document.body.dataset.signIn === "required";
    if (signInRequired && !sessionStorage.getItem(AUTH_KEY)) {
      return go("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    try {
      if (!state.me || !state.catalogue) {
        loadSession();
        if (!state.me || !state.catalogue) {
          const [me] = await Promise.all([state.me || api("/api/v1/me"), catalogue()]);
          state.me = me;
          saveSession();
        }
      }
      const who = document.getElementById("who");
      who.innerHTML = `<span data-user="${esc(state.me.user)}" data-role="${esc(state.me.role)}">${esc(state.me.user)} · ${esc(state.me.role)}</span>` + (signInRequired ? '<button type="button" id="sign-out">Sign out</button>' : "");
      const out = document.getElementById("sign-out");
      if (out) out.onclick = () => {
        sessionStorage.removeItem(AUTH_KEY);
        sessionStorage.removeItem(SESSION_KEY);
        state.me = null;
        state.catalogue = null;
        go("/login");
      };
      for (const link of document.querySelectorAll("#nav a")) {
        link.hidden = link.dataset.admin === "true" && state.me.role !== "admin";
        link.classList.toggle("current", link.dataset.page === (parts[0] || "overview"));
      }
      if (mine !== generation) return;
      showFilters(state.catalogue);
      const name = parts[0] || "overview";
      if (name === "customers" && parts[1]) await profilePage(main, decodeURIComponent(parts[1]));
      else if (PAGES[name]) await PAGES[name](main);
      else main.appendChild(el("p", { class: "denied" }, "No such page."));
    } catch (error) {
      if (mine !== generation) return;
      main.appendChild(el("p", { class: "denied" }, esc(error.message)));
    }
    if (mine !== generation) return;
    const ms = performance.now() - started;
    window.__timings = window.__timings || [];
    // ms: from this route's start; at: since the navigation (what a full page load costs).
    window.__timings.push({ path: location.pathname, ms, at: performance.now() });
    document.body.dataset.ready = parts[0] || "overview";
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='/']");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || link.target) return;
    event.preventDefault();
    go(link.getAttribute("href"));
  });
  window.addEventListener("popstate", route);
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const { chart, box } of charts) chart.setSize({ width: box.clientWidth, height: chart.height });
    }, 150);
  });
  route();
})();
