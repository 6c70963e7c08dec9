/* Diff viewer: click a line number to comment on it, click a gap to show hidden lines, and
 * follow the change set live.
 * Event delegation keeps the rows free of per-line attributes (a file may have 50,000), and
 * the templates free of inline handlers (the Content-Security-Policy forbids them). */
(function () {
  "use strict";

  function root() { return document.getElementById("rv"); }

  function expandContext(rv, expand) {
    var section = expand.closest(".rv-file");
    var params = "&i=" + section.dataset.i + "&o=" + expand.dataset.o +
      "&n=" + expand.dataset.n + "&c=" + expand.dataset.c;
    htmx.ajax("GET", rv.dataset.contextUrl + "?" + rv.dataset.query + params,
      { target: expand.closest("tr"), swap: "outerHTML" });
  }

  function openCommentForm(rv, cell) {
    var file = cell.closest(".rv-file");
    if (!file) return;
    var row = cell.closest("tr");
    var next = row.nextElementSibling;
    if (next && next.classList.contains("rv-form")) {
      next.querySelector("textarea").focus();
      return;
    }
    var query = rv.dataset.query + "&path=" + encodeURIComponent(file.dataset.path) +
      "&side=" + cell.dataset.s + "&line=" + cell.dataset.l;
    htmx.ajax("GET", rv.dataset.formUrl + "?" + query, { target: row, swap: "afterend" })
      .then(function () {
        var form = row.nextElementSibling;
        if (form && form.querySelector("textarea")) form.querySelector("textarea").focus();
      });
  }

  document.addEventListener("click", function (evt) {
    var rv = root();
    if (!rv || !window.htmx || !rv.contains(evt.target)) return;
    var cancel = evt.target.closest("button.rv-cancel");
    if (cancel) {
      cancel.closest("tr").remove();
      return;
    }
    var expand = evt.target.closest("button.expand");
    if (expand) {
      expandContext(rv, expand);
      return;
    }
    var cell = evt.target.closest("td.ln[data-l]");
    if (cell && rv.dataset.canComment) openCommentForm(rv, cell);
  });

  document.addEventListener("change", function (evt) {
    var select = evt.target.closest("select.rv-autosubmit");
    if (select && select.form) select.form.submit();
  });

  /* A placeholder keeps the height of the diff it stands for (set here, not in a style
   * attribute, which the policy forbids), so the scrollbar does not jump as files load. */
  function sizePlaceholders(scope) {
    scope.querySelectorAll(".rv-pending[data-rows]").forEach(function (el) {
      el.style.setProperty("--rows", el.dataset.rows);
    });
  }

  /* Live: the websocket only says "changed"; the page pulls what changed over HTTP from the
   * URL of #rv-poll, which carries what the page already shows (the answer swaps in a new
   * one). The same pull runs on every (re)connect, so what a dropped connection missed
   * comes back, and every FALLBACK_MS while there is no connection, so the page still
   * follows without one. */
  var FALLBACK_MS = 10000;
  var syncing = 0;  // when the pull in flight started (0: none)
  var again = false;

  function pulled() {
    syncing = 0;
    if (again) { again = false; sync(); }
  }

  function sync() {
    var poll = document.getElementById("rv-poll");
    if (!poll || !window.htmx) return;
    // One pull at a time; a change announced meanwhile asks for one more after it. A pull
    // that never answered (10 s) does not hold the next ones back.
    if (syncing && Date.now() - syncing < 10000) { again = true; return; }
    syncing = Date.now();
    htmx.ajax("GET", poll.dataset.url, { target: poll, swap: "outerHTML" })
      .then(pulled, pulled);
  }

  /* A pulled file body replaces the shown one: what the reader is typing there (a new
   * comment, a reply) is carried over to the new body instead of being lost. */
  var kept = null;

  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var body = evt.detail.target;
    if (!body || !body.classList || !body.classList.contains("rv-body")) return;
    kept = { id: body.id, forms: [], replies: {} };
    body.querySelectorAll("tr.rv-form").forEach(function (row) {
      var form = row.querySelector("form");
      kept.forms.push({ row: row, side: form.elements.side.value, line: form.elements.first_line.value });
    });
    body.querySelectorAll("tr.rv-thread").forEach(function (thread) {
      var text = thread.querySelector("form.rv-reply textarea");
      if (text && text.value) kept.replies[thread.id] = text.value;
    });
  });

  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    // Fired on each element the answer swapped in so far; the new body has the old id.
    var body = evt.target;
    if (!kept || body.id !== kept.id || !body.isConnected) return;
    kept.forms.forEach(function (item) {
      var cell = body.querySelector('td.ln[data-s="' + item.side + '"][data-l="' + item.line + '"]');
      if (cell) cell.closest("tr").after(item.row);
    });
    Object.keys(kept.replies).forEach(function (id) {
      var thread = document.getElementById(id);
      var text = thread && thread.querySelector("form.rv-reply textarea");
      if (text) text.value = kept.replies[id];
    });
    kept = null;
  });

  function setState(state, text) {
    var badge = document.getElementById("rv-live");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  function connect(rv, delay) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket;
    try {
      socket = new WebSocket(scheme + location.host + rv.dataset.wsPath);
    } catch (err) {
      setState("offline", "not live");
      return;
    }
    var fallback = null;
    socket.onopen = function () {
      delay = 1000;
      if (fallback) { clearInterval(fallback); fallback = null; }
      setState("live", "live");
      sync();
    };
    socket.onmessage = function (msg) {
      var data;
      try { data = JSON.parse(msg.data); } catch (err) { return; }
      if (data.type === "changed") sync();
    };
    socket.onclose = function (evt) {
      if (evt.code === 4401 || evt.code === 4404) {
        setState("offline", "not live");
        return;
      }
      setState("offline", "reconnecting…");
      if (!fallback) fallback = setInterval(sync, FALLBACK_MS);
      setTimeout(function () {
        if (fallback) { clearInterval(fallback); fallback = null; }
        connect(rv, Math.min(delay * 2, 15000));
      }, delay);
    };
  }

  function start() {
    var rv = root();
    if (!rv) return;
    sizePlaceholders(rv);
    document.addEventListener("htmx:load", function (evt) { sizePlaceholders(evt.target); });
    if (rv.dataset.wsPath && window.WebSocket) connect(rv, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
