// The console's only script (served by the app; no inline code, so the CSP needs no
// 'unsafe-inline'): SLA countdowns tick every second, and the queue refreshes itself.
"use strict";

function countdownText(due, now) {
  let seconds = Math.trunc((due - now) / 1000);
  const sign = seconds >= 0 ? "in " : "overdue ";
  seconds = Math.abs(seconds);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h) return `${sign}${h}h ${pad(m)}m ${pad(s)}s`;
  if (m) return `${sign}${m}m ${pad(s)}s`;
  return `${sign}${s}s`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time.countdown")) {
    const due = Date.parse(el.getAttribute("datetime"));
    if (Number.isNaN(due)) continue;
    el.textContent = countdownText(due, now);
    el.classList.toggle("overdue", due < now);
  }
}

async function refreshQueue(tbody) {
  try {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("queue");
    if (fresh) {
      tbody.replaceChildren(...fresh.childNodes);
      tick();
    }
  } catch (e) {
    // offline for a moment: the next round tries again
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const queue = document.getElementById("queue");
  if (queue) {
    const every = Number(queue.dataset.refresh || "15") * 1000;
    setInterval(() => refreshQueue(queue), every);
  }
});
