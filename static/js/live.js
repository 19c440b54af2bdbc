// Live pushes (stages/live.py): each message is the fragments a change touched, swapped out of
// band into the elements of their ids, led by <div id="live-seq"> carrying the change numbers it
// covers. The page tells the server what it shows (its open drawer, whether it is on the newest
// timeline page, the change number it has seen) when the socket opens and when its drawer
// changes; the server then sends it only fragments it has a target for, and re-syncs its regions
// when it has missed changes (rendered before one, reconnected, a gap in the numbers).
// Loaded with `defer` after htmx (base.html), so htmx is defined here.
(function () {
  let socket = null;

  function seen() {
    const marker = document.getElementById("live-seq");
    return marker ? Number(marker.dataset.seq || 0) : 0;
  }

  function watch(extra) {
    if (!socket) return;
    const drawer = document.querySelector("#drawer > .drawer-body");
    const state = {
      drawer: drawer ? drawer.id : "",
      newest: Boolean(document.getElementById("timeline")),
      seq: seen(),
    };
    socket.send(JSON.stringify({ watch: Object.assign(state, extra || {}) }));
  }

  htmx.defineExtension("shown-only", {
    transformResponse(text, xhr) {
      if (xhr) return text; // responses to the page's own requests pass unchanged
      const message = document.createElement("template");
      message.innerHTML = text;
      const marker = message.content.getElementById("live-seq");
      if (marker && !marker.hasAttribute("data-resync")) {
        const from = Number(marker.dataset.from || 0);
        if (from > seen() + 1) setTimeout(() => watch({ resync: true }), 0);
      }
      // Fragments without a target here (another drawer) are dropped before htmx looks for
      // them, which would log htmx:oobErrorNoTarget.
      for (const part of [...message.content.children]) {
        if (!part.id || !document.getElementById(part.id)) part.remove();
      }
      return message.innerHTML;
    },
  });

  document.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
    document.documentElement.dataset.live = "up";
    watch();
  });
  document.addEventListener("htmx:wsClose", () => {
    socket = null;
    document.documentElement.dataset.live = "down";
  });
  // A Stage's drawer (opened from the overview, "Jump to" or the graph) brings its card into
  // view and marks it.
  function showStage() {
    const body = document.querySelector("#drawer > .drawer-body[id^='stage-drawer-']");
    document.querySelectorAll(".node-stage.jumped").forEach((e) => e.classList.remove("jumped"));
    if (!body) return;
    const card = document.getElementById("stage-" + body.id.slice("stage-drawer-".length));
    if (!card) return;
    card.classList.add("jumped");
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "drawer") {
      watch();
      showStage();
    }
  });
  document.addEventListener("DOMContentLoaded", showStage);

  // "3 minutes ago" kept current: cached and pushed HTML carries the time, not a stale text.
  const UNITS = [
    ["year", 365 * 86400],
    ["month", 30 * 86400],
    ["week", 7 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  function ago(when) {
    const seconds = (Date.now() - when.getTime()) / 1000;
    if (!(seconds >= 60)) return "just now";
    for (const [unit, size] of UNITS) {
      const n = Math.floor(seconds / size);
      if (n >= 1) return `${n}\u00a0${unit}${n === 1 ? "" : "s"} ago`;
    }
    return "just now";
  }
  function refreshTimes(root) {
    for (const time of (root || document).querySelectorAll("time[data-ago]")) {
      const text = ago(new Date(time.dateTime));
      if (time.textContent !== text) time.textContent = text;
    }
  }
  document.addEventListener("htmx:load", (event) => refreshTimes(event.detail.elt));
  document.addEventListener("DOMContentLoaded", () => refreshTimes());
  setInterval(refreshTimes, 30000);
})();
