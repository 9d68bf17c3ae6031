// AblationKit site: filters on the leaderboard, judge matches drawn as wires on paper pages.
// Plain script, no modules and no fetch, so it runs from file:// as well as from a server.
(function () {
  "use strict";

  function applyFilters() {
    var model = document.getElementById("filter-model").value;
    var mode = document.getElementById("filter-mode").value;
    var shown = 0;
    document.querySelectorAll("tr[data-model]").forEach(function (row) {
      var ok = (!model || row.dataset.model === model) && (!mode || row.dataset.mode === mode);
      row.classList.toggle("hidden", !ok);
      if (ok && row.closest("table.papers")) shown += 1;
    });
    document.querySelectorAll("section.board").forEach(function (section) {
      var rows = section.querySelectorAll("tr[data-model]:not(.hidden)").length;
      section.classList.toggle("hidden", (mode && section.dataset.mode !== mode) || rows === 0 && !!model);
    });
    var count = document.getElementById("filter-count");
    if (count) count.textContent = shown + " paper page" + (shown === 1 ? "" : "s");
    var params = new URLSearchParams();
    if (model) params.set("model", model);
    if (mode) params.set("mode", mode);
    var query = params.toString();
    history.replaceState(null, "", query ? "?" + query : location.pathname);
  }

  function setupFilters() {
    var model = document.getElementById("filter-model");
    var mode = document.getElementById("filter-mode");
    if (!model || !mode) return;
    var params = new URLSearchParams(location.search);
    if (params.get("model")) model.value = params.get("model");
    if (params.get("mode")) mode.value = params.get("mode");
    model.addEventListener("change", applyFilters);
    mode.addEventListener("change", applyFilters);
    applyFilters();
  }

  function currentJudge() {
    var select = document.getElementById("judge-select");
    return select ? select.value : null;
  }

  function drawWires() {
    var svg = document.getElementById("wires");
    var data = document.getElementById("matches");
    if (!svg || !data) return;
    var matches = JSON.parse(data.textContent || "{}");
    var judge = currentJudge();
    document.querySelectorAll("[data-judge]").forEach(function (el) {
      el.classList.toggle("off", el.dataset.judge !== judge);
    });
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var box = svg.getBoundingClientRect();
    (matches[judge] || []).forEach(function (pair) {
      var from = document.getElementById("p" + pair[0]);
      var to = document.getElementById("g" + pair[1]);
      if (!from || !to) return;
      var a = from.getBoundingClientRect();
      var b = to.getBoundingClientRect();
      var x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top;
      var x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
      var bend = Math.max(30, (x2 - x1) / 2);
      var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " +
        (x2 - bend) + "," + y2 + " " + x2 + "," + y2);
      path.dataset.planned = pair[0];
      path.dataset.target = pair[1];
      svg.appendChild(path);
    });
  }

  function light(kind, index, on) {
    var attr = kind === "p" ? "planned" : "target";
    document.querySelectorAll("svg.wires path").forEach(function (path) {
      if (path.dataset[attr] === String(index)) {
        path.classList.toggle("lit", on);
        var other = kind === "p" ? "g" + path.dataset.target : "p" + path.dataset.planned;
        var el = document.getElementById(other);
        if (el) el.classList.toggle("lit", on);
      }
    });
  }

  function setupPaper() {
    if (!document.getElementById("pair")) return;
    var select = document.getElementById("judge-select");
    if (select) select.addEventListener("change", drawWires);
    window.addEventListener("resize", drawWires);
    document.querySelectorAll("li.abl").forEach(function (item) {
      var kind = item.id.charAt(0);
      item.addEventListener("mouseenter", function () { light(kind, item.dataset.index, true); });
      item.addEventListener("mouseleave", function () { light(kind, item.dataset.index, false); });
    });
    drawWires();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupFilters();
    setupPaper();
  });
})();
