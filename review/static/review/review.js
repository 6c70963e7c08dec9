/* Diff viewer: click a line number to comment on it, click a gap to show hidden lines.
 * Event delegation keeps the rows free of per-line attributes (a file may have 50,000). */
(function () {
  "use strict";
  document.addEventListener("click", function (evt) {
    var root = document.getElementById("rv");
    if (!root || !window.htmx) return;
    var expand = evt.target.closest("button.expand");
    if (expand && root.contains(expand)) {
      var section = expand.closest(".rv-file");
      var params = "&i=" + section.dataset.i + "&o=" + expand.dataset.o +
        "&n=" + expand.dataset.n + "&c=" + expand.dataset.c;
      htmx.ajax("GET", root.dataset.contextUrl + "?" + root.dataset.query + params,
        { target: expand.closest("tr"), swap: "outerHTML" });
      return;
    }
    var cell = evt.target.closest("td.ln[data-l]");
    if (!cell || !root.contains(cell) || !root.dataset.canComment) return;
    var file = cell.closest(".rv-file");
    if (!file) return;
    var row = cell.closest("tr");
    var next = row.nextElementSibling;
    if (next && next.classList.contains("rv-form")) {
      next.querySelector("textarea").focus();
      return;
    }
    var query = root.dataset.query + "&path=" + encodeURIComponent(file.dataset.path) +
      "&side=" + cell.dataset.s + "&line=" + cell.dataset.l;
    htmx.ajax("GET", root.dataset.formUrl + "?" + query, { target: row, swap: "afterend" })
      .then(function () {
        var form = row.nextElementSibling;
        if (form && form.querySelector("textarea")) form.querySelector("textarea").focus();
      });
  });
})();
