// Coffer dashboard: the one script. Every page works without it; it adds two things.
//
// 1. A run page's live progress, from the server-sent events at data-events. Plain
//    EventSource is enough here: one-way updates of a few fields, reconnection built
//    into the browser, and no library to vendor or keep up to date.
// 2. The job form's preview of the next runs as the schedule or time zone is typed.
"use strict";

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function secs(s) {
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

// As the page's own times read: "Tue 2026-12-01 03:44:05 UTC".
function when(rfc3339) {
  const d = new Date(rfc3339);
  if (isNaN(d)) return rfc3339;
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  return days[d.getUTCDay()] + " " + d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

function showRun(run) {
  const p = run.progress || {};
  const status = document.getElementById("run-status");
  if (status) { status.textContent = run.status; status.className = "status status-" + run.status; }
  setText("run-files", run.files + (p.files_total ? " of " + p.files_total : ""));
  setText("run-bytes", bytes(run.bytes) + (p.bytes_total ? " of " + bytes(p.bytes_total) : ""));
  setText("run-rate", p.rate ? bytes(p.rate) + "/s" : "—");
  setText("run-eta", p.eta_secs !== undefined && p.eta_secs !== null ? secs(p.eta_secs) : "—");
  setText("run-path", p.current_path || "");
  setText("run-reported", p.updated_at ? when(p.updated_at) : "—");
  const bar = document.getElementById("run-progress");
  if (bar && p.bytes_total) bar.value = Math.min(100, Math.floor(run.bytes * 100 / p.bytes_total));
  if (bar && run.status === "succeeded") bar.value = 100;
  const err = document.getElementById("run-error");
  if (err) { err.hidden = !run.error; err.textContent = run.error || ""; }
}

function watchRun(section) {
  const source = new EventSource(section.dataset.events);
  let updates = 0;
  const onEvent = (ev) => {
    updates++;
    setText("run-updates", String(updates));
    showRun(JSON.parse(ev.data));
  };
  source.addEventListener("progress", onEvent);
  source.addEventListener("end", (ev) => { onEvent(ev); source.close(); section.dataset.ended = "true"; });
  // The session ended (signed out elsewhere, or its token revoked): stop listening.
  source.addEventListener("signed-out", () => {
    source.close();
    setText("run-error", "Signed out: sign in again to keep watching this run.");
    const err = document.getElementById("run-error");
    if (err) err.hidden = false;
  });
}

function previewSchedule() {
  const schedule = document.getElementById("schedule");
  const zone = document.getElementById("time_zone");
  const out = document.getElementById("schedule-preview");
  if (!schedule || !zone || !out) return;
  let timer = null;
  const update = () => {
    const q = new URLSearchParams({ schedule: schedule.value, time_zone: zone.value });
    fetch("/ui/schedule-preview?" + q, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((a) => {
        if (a.error) out.textContent = "Schedule: " + a.error;
        else if (a.note) out.textContent = a.note;
        else out.textContent = "Next runs (" + a.time_zone + "): " + a.next.join("; ");
      })
      .catch(() => {});
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(update, 300); };
  schedule.addEventListener("input", later);
  zone.addEventListener("input", later);
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.getElementById("run");
  if (run && run.dataset.events) watchRun(run);
  previewSchedule();
});
