// Live overview: when the log's head moves (server-sent events from
// /events), fetch the overview's table again and announce it politely.
// Without JavaScript the page works the same; it just does not refresh.
(function () {
  "use strict";
  var region = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!region || !window.EventSource) return;
  var url = region.getAttribute("data-live");
  var lang = document.documentElement.lang === "en" ? "en" : "sv";
  // The head the page was rendered at: any later one means new events.
  var last = region.getAttribute("data-head");
  var source = new EventSource("/events");
  source.addEventListener("head", function (ev) {
    if (ev.data === last) return;
    last = ev.data;
    fetch(url + "&lang=" + lang, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        region.innerHTML = html;
        var now = new Date().toLocaleTimeString(lang === "en" ? "en-GB" : "sv-SE");
        status.textContent = (lang === "en" ? "Updated with new events at " : "Uppdaterad med nya händelser ") + now;
      })
      .catch(function () {});
  });
})();
