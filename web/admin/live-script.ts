// The admin page's small browser script (plain JS, inline; no build step). It polls the status JSON
// every POLL_MS and swaps in the server-rendered live parts it carries (already HTML-escaped by
// hono/jsx), and asks for confirmation before a Stop that would leave tablets without a live in-sync
// replica (the server checks again and asks itself when there is no JavaScript).

export const POLL_MS = 1500;

export const LIVE_SCRIPT = `
(() => {
  const POLL_MS = ${POLL_MS};
  const stale = document.getElementById('live-stale');
  let busy = false;
  // No swapping under a pressed button (the click would be lost) or once a form is on its way.
  let holding = false;
  let leaving = false;
  document.addEventListener('pointerdown', () => { holding = true; });
  document.addEventListener('pointerup', () => { setTimeout(() => { holding = false; }, 0); });
  async function poll() {
    if (busy || holding || leaving || document.hidden) return;
    busy = true;
    try {
      const res = await fetch('/admin/api/status?html=1', { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) { location.reload(); return; }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const data = await res.json();
      if (holding || leaving) return;
      for (const [id, html] of Object.entries(data.html || {})) {
        const el = document.getElementById(id);
        if (el) el.innerHTML = html;
      }
      if (stale) stale.hidden = true;
    } catch (e) {
      if (stale) stale.hidden = false;
    } finally {
      busy = false;
    }
  }
  setInterval(poll, POLL_MS);
  // A tab in the background does not poll; it catches up as soon as it is shown again.
  document.addEventListener('visibilitychange', () => { if (!document.hidden) void poll(); });
  document.addEventListener('submit', (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!form.classList.contains('node-stop')) { leaving = true; return; }
    const stranded = form.dataset.stranded;
    if (stranded) {
      const ok = confirm(form.dataset.node + ' is the last live in-sync replica of tablet(s) ' + stranded +
        '. Stopping it makes them unavailable until it is restarted. Stop it anyway?');
      if (!ok) { ev.preventDefault(); return; }
      form.elements.namedItem('confirm').value = '1';
    }
    leaving = true;
    const button = form.querySelector('button');
    if (button) { button.disabled = true; button.textContent = 'Stopping…'; }
  });
})();
`;
