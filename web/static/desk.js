// Keyboard shortcuts for the desk (no inline script: the CSP allows only this file).
// j / k move through the rows of a list, Enter opens the selected row, / focuses the first
// filter, g r / g c / g d go to the review queue, cases, dashboard; ? shows this help.
(function () {
  "use strict";
  var rows = [], current = -1, pendingG = false;
  function typing(e) {
    var t = e.target && e.target.tagName;
    return t === "INPUT" || t === "TEXTAREA" || t === "SELECT" || (e.target && e.target.isContentEditable);
  }
  function select(i) {
    if (!rows.length) return;
    if (current >= 0 && rows[current]) rows[current].classList.remove("selected");
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows[current].classList.add("selected");
    rows[current].scrollIntoView({block: "nearest"});
  }
  function help() {
    var box = document.getElementById("help");
    if (box) { box.remove(); return; }
    box = document.createElement("div");
    box.id = "help";
    var lines = ["j / k  next / previous row", "Enter  open the selected row", "/  first filter",
                 "g r  review queue", "g c  cases", "g d  dashboard", "?  this help"];
    lines.forEach(function (line) { var p = document.createElement("div"); p.textContent = line; box.appendChild(p); });
    document.body.appendChild(box);
  }
  document.addEventListener("DOMContentLoaded", function () {
    rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
    rows.forEach(function (row, i) {
      row.addEventListener("click", function (e) {
        if (e.target.closest("a,button,input,select,textarea")) return;
        window.location = row.getAttribute("data-href");
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  });
  document.addEventListener("keydown", function (e) {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (pendingG) {
      pendingG = false;
      var to = {r: "/review", c: "/cases", d: "/dashboard"}[e.key];
      if (to) { window.location = to; e.preventDefault(); }
      return;
    }
    if (e.key === "j") { select(current + 1); e.preventDefault(); }
    else if (e.key === "k") { select(current - 1); e.preventDefault(); }
    else if (e.key === "Enter" && current >= 0) { window.location = rows[current].getAttribute("data-href"); }
    else if (e.key === "/") { var f = document.querySelector("form.filters input, form.filters select"); if (f) { f.focus(); e.preventDefault(); } }
    else if (e.key === "g") { pendingG = true; }
    else if (e.key === "?") { help(); }
  });
})();
