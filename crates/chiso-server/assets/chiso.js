// chiso: sortable tables and self-submitting filters. Pages work without it.
"use strict";
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.classList.contains("num");
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-sort") || "";
        var y = b.cells[column].getAttribute("data-sort") || "";
        // Missing values go last, whichever the direction.
        if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
        var order = numeric ? Number(x) - Number(y) : x.localeCompare(y, "vi");
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
// The SQL console: Ctrl+Enter (or Cmd+Enter) runs the query.
document.querySelectorAll("form.sql-form textarea").forEach(function (area) {
  area.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      area.form.submit();
    }
  });
});
// Signed in: who, and a way out. Asked of the server rather than written
// into the page, which is shared by every reader of the same scope.
(function () {
  var header = document.querySelector("header");
  if (!header || !window.fetch) { return; }
  fetch("/api/me", { credentials: "same-origin" })
    .then(function (answer) { return answer.ok ? answer.json() : null; })
    .then(function (me) {
      if (!me || !me.name) { return; }
      var english = document.documentElement.lang === "en";
      var form = document.createElement("form");
      form.className = "account";
      form.method = "post";
      form.action = "/logout";
      var who = document.createElement("span");
      who.textContent = me.name + " · " + me.role_label[english ? "en" : "vi"];
      var button = document.createElement("button");
      button.type = "submit";
      button.textContent = english ? "Sign out" : "Đăng xuất";
      form.appendChild(who);
      form.appendChild(button);
      header.appendChild(form);
    })
    .catch(function () {});
})();
