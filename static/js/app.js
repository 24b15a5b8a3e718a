// Cadenza progressive enhancements. Everything here is optional: the pages work without it.
(function () {
  "use strict";

  function browserTimeZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function csrfToken() {
    var holder = document.body && document.body.getAttribute("hx-headers");
    try { return holder ? JSON.parse(holder)["x-csrftoken"] : ""; } catch (e) { return ""; }
  }

  function init() {
    var zone = browserTimeZone();
    // Sign-up: preselect the zone the browser reports, if the server offers it.
    document.querySelectorAll("select[data-detect-timezone]").forEach(function (select) {
      if (!zone || select.dataset.touched) return;
      var option = select.querySelector('option[value="' + zone.replace(/"/g, "") + '"]');
      if (option) { option.selected = true; }
    });
    // Visitors who are not signed in: remember the browser's zone so times show in it.
    if (zone && document.cookie.indexOf("cadenza_tz=") === -1) {
      var body = new URLSearchParams({ timezone: zone });
      fetch("/timezone", { method: "POST", body: body, credentials: "same-origin",
        headers: { "x-csrftoken": csrfToken() } }).catch(function () {});
    }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
