// mlx-harness scorecard: search, filter and sort the item table; open linked items.
// Inline, no network, no libraries. Without it the page is the same, minus these controls.
(function () {
  "use strict";
  var table = document.getElementById("item-table");
  var panel = document.getElementById("filters");
  if (table && panel) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var text = rows.map(function (r) { return r.textContent.toLowerCase(); });
    var q = document.getElementById("q");
    // columns: 0 suite, 1 model, 2 item, 3 category, 4 verdict, 5 score, 6 flipped, 7 detail
    var sel = {model: ["f-model", 1], suite: ["f-suite", 0], category: ["f-category", 3], verdict: ["f-verdict", 4]};
    var cell = function (r, i) { return r.cells[i].textContent.trim(); };
    var flipped = document.getElementById("f-flipped");
    var count = document.getElementById("count");
    var apply = function () {
      var needle = q.value.trim().toLowerCase();
      var want = {};
      Object.keys(sel).forEach(function (k) { want[k] = document.getElementById(sel[k][0]).value; });
      var shown = 0;
      rows.forEach(function (r, i) {
        var ok = (!needle || text[i].indexOf(needle) >= 0) && (!flipped.checked || cell(r, 6) !== "");
        Object.keys(want).forEach(function (k) { if (ok && want[k] && cell(r, sel[k][1]) !== want[k]) { ok = false; } });
        r.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " rows";
    };
    panel.hidden = false;
    document.body.classList.add("js");
    q.addEventListener("input", apply);
    flipped.addEventListener("change", apply);
    Object.keys(sel).forEach(function (k) { document.getElementById(sel[k][0]).addEventListener("change", apply); });
    apply();
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-sort]"), function (th) {
      th.tabIndex = 0;
      th.title = "sort";
      var sort = function () {
        var key = th.dataset.sort;
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(table.tHead.querySelectorAll("th"), function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var col = th.cellIndex;
        var value = function (r) {
          if (key === "value") { var v = parseFloat(cell(r, col)); return isNaN(v) ? -Infinity : v; }
          return r.cells[col].textContent.trim().toLowerCase();
        };
        rows.sort(function (a, b) {
          var x = value(a), y = value(b);
          return (x < y ? -1 : x > y ? 1 : 0) * dir;
        });
        text = rows.map(function (r) { return r.textContent.toLowerCase(); });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  }
  // A link to an item card (#item-N) opens it.
  var open = function () {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  };
  window.addEventListener("hashchange", open);
  open();
})();
