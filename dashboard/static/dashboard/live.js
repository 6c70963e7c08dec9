/* Live pages: the websocket pushes out-of-band fragments (htmx ws extension); this keeps the
 * last event id, re-syncs over HTTP (?after=<id>) on (re)connect, on a detected gap and
 * when the tab comes back, and shows when the live connection is lost. */
(function () {
  "use strict";
  var TIMELINE_MAX = 200;
  var NO_RECONNECT = [4401, 4403];
  var AUTO_RECONNECT = [1006, 1011, 1012, 1013]; // the ws extension retries these itself

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var live = document.getElementById("live");
    if (!live || !window.htmx) return;
    var status = document.getElementById("live-status");
    var lost = document.getElementById("live-lost");
    var last = parseInt(live.dataset.lastEvent || "0", 10);
    var syncing = false;
    var pending = null;
    var lostSince = null;

    function show(state, text) {
      if (status) {
        status.dataset.state = state;
        status.textContent = text;
      }
      document.body.dataset.live = state;
      if (!lost) return;
      if (state === "lost" || state === "closed") {
        if (!lostSince) lostSince = new Date();
        lost.querySelector(".since").textContent = lostSince.toLocaleTimeString();
        lost.hidden = false;
      } else if (state === "live") {
        lostSince = null;
        lost.hidden = true;
      }
    }

    function cursorOf(html) {
      var m = /id="live-cursor"[^>]*data-event="(\d+)" data-prev="(\d+)"(\s+data-more)?/.exec(html);
      return m ? { event: +m[1], prev: +m[2], more: !!m[3] } : null;
    }

    function resync(after) {
      if (syncing) {
        pending = Math.min(pending === null ? after : pending, after);
        return;
      }
      syncing = true;
      var sep = live.dataset.resync.indexOf("?") < 0 ? "?" : "&";
      var url = live.dataset.resync + sep + "after=" + after;
      htmx.ajax("GET", url, { target: "#live-cursor", swap: "none" }).then(function () {
        syncing = false;
        var cur = document.getElementById("live-cursor");
        if (cur) {
          last = Math.max(last, parseInt(cur.dataset.event || "0", 10));
          if (cur.hasAttribute("data-more")) pending = last;
        }
        if (pending !== null) {
          var next = pending;
          pending = null;
          resync(next);
        }
      }, function () {
        syncing = false;
      });
    }

    live.addEventListener("htmx:wsConnecting", function () {
      if (!lostSince) show("connecting", "connecting…");
    });
    // A running agent's log: batches carry their offset in the run's output. What the
    // page already holds is dropped; a missed batch (or a reconnect) re-reads the log,
    // which the worker stores on the run while it runs.
    function runBody() {
      return document.querySelector(".run-body[data-active]");
    }
    function refreshRunLog() {
      var body = runBody();
      if (!body) return;
      fetch(body.dataset.refresh, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          var current = runBody();
          if (!html || !current) return;
          var holder = document.createElement("template");
          holder.innerHTML = html.trim();
          var fresh = holder.content.firstElementChild;
          if (!fresh) return;
          // Lines pushed while the re-read was on its way may be newer than the stored
          // copy it brings: never trade a longer log for a shorter one.
          var have = current.querySelector(".run-log");
          var got = fresh.querySelector(".run-log");
          // (A finished run's final output always wins.)
          if (fresh.hasAttribute("data-active") && have && got &&
              parseInt(got.dataset.length || "0", 10) <
              parseInt(have.dataset.length || "0", 10)) return;
          current.replaceWith(fresh);
          htmx.process(fresh);
        }, function () { /* offline: the next re-read or pushed batch catches up */ });
    }
    function trimRunLog(log, frag) {
      frag.querySelectorAll(".live-lines[data-start]").forEach(function (span) {
        var have = parseInt(log.dataset.length || "0", 10);
        var start = parseInt(span.dataset.start, 10);
        var text = span.textContent;
        if (start > have) {
          span.remove();
          refreshRunLog();
          return;
        }
        if (start < have) span.textContent = text.slice(have - start);
        log.dataset.length = String(Math.max(have, start + text.length));
        var empty = log.parentNode.querySelector(".run-log-empty");
        if (empty) empty.hidden = true;
      });
    }
    setInterval(function () {
      // Without the websocket, the log and the run's state still move, more slowly.
      if (document.body.dataset.live !== "live") refreshRunLog();
    }, 10000);

    live.addEventListener("htmx:wsOpen", function () {
      show("live", "live");
      resync(last); // whatever happened since the page was rendered or the socket dropped
      refreshRunLog();
    });
    live.addEventListener("htmx:wsClose", function (evt) {
      var code = evt.detail.event.code;
      if (NO_RECONNECT.indexOf(code) >= 0) {
        show("closed", code === 4401 ? "signed out — reload" : "no access");
        return;
      }
      show("lost", "reconnecting…");
      if (AUTO_RECONNECT.indexOf(code) < 0 && document.body.contains(live)) {
        // A clean close (server restart, proxy timeout): the extension would give up.
        var wrapper = evt.detail.socketWrapper;
        setTimeout(function () { wrapper.reconnect(); }, 1000 + Math.random() * 2000);
      }
    });
    live.addEventListener("htmx:wsBeforeMessage", function (evt) {
      var cur = cursorOf(evt.detail.message);
      if (!cur) return;
      // The workspace's event before this one is newer than anything we have: a message
      // was lost on the way. Fetch what we missed once this frame is applied.
      if (cur.prev > last) setTimeout(resync.bind(null, last), 0);
      last = Math.max(last, cur.event);
    });

    // Rows already on the page (a re-sync overlapping a push) are not inserted twice.
    document.body.addEventListener("htmx:oobBeforeSwap", function (evt) {
      var frag = evt.detail.fragment;
      if (!frag || !frag.querySelectorAll) return;
      frag.querySelectorAll("[data-event-id]").forEach(function (row) {
        if (document.getElementById(row.id)) row.remove();
      });
      var target = evt.detail.target;
      if (target && target.classList && target.classList.contains("run-log")) trimRunLog(target, frag);
    });

    document.body.addEventListener("htmx:oobAfterSwap", function () {
      var timeline = document.getElementById("timeline");
      if (!timeline) return;
      while (timeline.children.length > TIMELINE_MAX) timeline.removeChild(timeline.lastElementChild);
    });

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") resync(last);
    });
    setInterval(function () { resync(last); }, 60000);
  });
})();
