// Live pushes: every open page of a role gets the same message (stages/fragments.py:
// render_change), each top-level element of it swapped out of band into the element of its id.
// The message carries the drawers the change may alter; a page keeps only the fragments it shows
// (its open drawer, the newest timeline page) and drops the others before htmx looks for them,
// which would log htmx:oobErrorNoTarget. Responses to the page's own requests pass unchanged.
// Loaded with `defer` after htmx (base.html), so htmx is defined here.
htmx.defineExtension("shown-only", {
  transformResponse(text, xhr) {
    if (xhr) return text;
    const message = document.createElement("template");
    message.innerHTML = text;
    for (const part of [...message.content.children]) {
      if (!part.id || !document.getElementById(part.id)) part.remove();
    }
    return message.innerHTML;
  },
});
