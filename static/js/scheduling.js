// Scheduling enhancements (optional: every page works without them).
(function () {
  "use strict";

  function browserTimeZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function init() {
    // After a refused save, move the focus to the error summary (where `autofocus` is not honoured).
    var summary = document.querySelector("[data-focus-on-load]");
    if (summary && document.activeElement !== summary) { summary.focus(); }

    // Week picker: a visitor whose zone the server did not know yet sees the times in the
    // browser's zone (the select changes, and htmx reloads the week).
    var picker = document.querySelector("form[data-zone-source='default']");
    var zone = browserTimeZone();
    if (picker && zone) {
      var select = picker.querySelector("select[name='tz']");
      if (select && select.value !== zone && select.querySelector('option[value="' + zone.replace(/"/g, "") + '"]')) {
        select.value = zone;
        picker.setAttribute("data-zone-source", "browser");
        if (window.htmx) { window.htmx.trigger(select, "change"); } else { picker.submit(); }
      }
    }
  }

  // After htmx has processed the page (its own DOMContentLoaded handler runs first).
  function later() { window.setTimeout(init, 0); }
  if (document.readyState === "complete") { later(); } else { document.addEventListener("DOMContentLoaded", later); }
})();
