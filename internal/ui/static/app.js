// walhook dashboard: progressive enhancements only; every page works
// without this file. No inline script is allowed by the page's CSP.
(function () {
  "use strict";

  // Live parts: [data-live] elements are refreshed from their URL (an HTML
  // fragment of the same page) every 2 s while the tab is visible.
  function live(el) {
    var url = el.getAttribute("data-live");
    var last = null;
    var busy = false;
    var stopped = false;
    function tick() {
      if (busy || stopped || document.visibilityState !== "visible") {
        return;
      }
      busy = true;
      fetch(url, { headers: { "X-Walhook-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
        .then(function (res) {
          if (!res.ok) {
            // Signed out, forbidden or gone: stop asking.
            if (res.status >= 400 && res.status < 500) {
              stopped = true;
            }
            return null;
          }
          return res.text();
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            last = html;
            if (el.innerHTML.trim() !== html.trim()) {
              el.innerHTML = html;
            }
          }
        })
        .catch(function () { /* offline for a moment: try again at the next tick */ })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, 2000);
    document.addEventListener("visibilitychange", tick);
  }

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Copy buttons: <button data-copy="ID"> copies the text of #ID.
  function copy(btn) {
    var src = document.getElementById(btn.getAttribute("data-copy"));
    if (!src) {
      return;
    }
    var text = src.textContent;
    var label = btn.textContent;
    function done(ok) {
      btn.textContent = ok ? "Copied" : "Selected: press Ctrl+C";
      window.setTimeout(function () { btn.textContent = label; }, 2500);
    }
    function fallback() {
      selectText(src);
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("button[data-copy]");
    if (btn) {
      e.preventDefault();
      copy(btn);
    }
  });

  // Forms with data-confirm ask first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  });

  // Filter selects apply at once.
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) {
      if (el.form.requestSubmit) {
        el.form.requestSubmit();
      } else {
        el.form.submit();
      }
    }
  });

  function init() {
    var els = document.querySelectorAll("[data-live]");
    for (var i = 0; i < els.length; i++) {
      live(els[i]);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
