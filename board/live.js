// The board's live updates: the event stream says when what the page shows
// has changed; the page then fetches itself again and swaps its live part
// (#live) for the fresh one. No library, no build step.
(function () {
  "use strict";
  var body = document.body;
  var src = body.getAttribute("data-events");
  var state = document.getElementById("live-state");
  if (!src || !window.EventSource || !window.fetch) { return; }
  var busy = false, again = false;
  function say(s) { if (state) { state.textContent = s; } }
  function editing() {
    var a = document.activeElement;
    return a && a.form && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT") && a.type !== "submit";
  }
  function refresh() {
    if (busy || editing()) { again = true; return; }
    busy = true;
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live"), cur = document.getElementById("live");
        if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
        body.setAttribute("data-fingerprint", doc.body.getAttribute("data-fingerprint") || "");
        say("live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function (e) { say("live · update failed: " + e.message); })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  document.addEventListener("focusout", function () { if (again && !busy) { again = false; refresh(); } });
  var es = new EventSource(src + "?since=" + encodeURIComponent(body.getAttribute("data-fingerprint") || ""));
  es.addEventListener("open", function () { say("live"); });
  es.addEventListener("change", refresh);
  es.addEventListener("failure", function (e) { say("live · the board could not read its state: " + e.data); });
  es.addEventListener("error", function () { say("live · reconnecting…"); });
})();
