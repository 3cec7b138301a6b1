// Custos admin console: a little plain JavaScript, no build step.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // "Cancel"/"Back" links go back in history when there is one.
    document.querySelectorAll("a[data-back]").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        if (window.history.length > 1) { ev.preventDefault(); window.history.back(); }
      });
    });
    // Idle timeout: the server ends the session after N idle seconds; show it and go to
    // the login page when it has happened.
    var body = document.body, idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
    if (idle > 0) {
      var deadline = Date.now() + idle * 1000, who = document.getElementById("who");
      var base = who ? who.textContent : "";
      setInterval(function () {
        var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
        if (who) { who.textContent = base + " · idle logout in " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0"); }
        if (left === 0) { window.location.href = body.getAttribute("data-login-url"); }
      }, 1000);
    }
    // Only one submit per form (no double actions).
    document.querySelectorAll("form[method=post]").forEach(function (f) {
      f.addEventListener("submit", function () {
        f.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      });
    });
  });
})();
