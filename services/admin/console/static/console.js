// mmr console: a little progressive enhancement, no framework. Without JavaScript the pages
// still read, and refresh through a <noscript> meta refresh.
"use strict";

// A page whose <main> has data-refresh="N" refetches itself every N seconds and swaps in the
// new <main>: live cluster membership and task progress without reloading the page.
(function () {
  const main = document.getElementById("main");
  if (!main || !main.dataset.refresh) return;
  const seconds = Math.max(1, parseInt(main.dataset.refresh, 10) || 5);
  async function refresh() {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (response.ok && !document.hidden) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("main");
        const active = document.activeElement;
        // Leave the page alone while someone types into one of its forms.
        if (fresh && !(active && main.contains(active) && active.matches("input, select"))) {
          main.replaceChildren(...fresh.childNodes);
        }
      }
    } catch (e) {
      // Offline for a moment: try again on the next tick.
    }
    window.setTimeout(refresh, seconds * 1000);
  }
  window.setTimeout(refresh, seconds * 1000);
})();
