// Officer pages: confirmations before irreversible actions, copy and print buttons, the live check-in count,
// batch-print progress.
// Loaded as a file because the pages' Content-Security-Policy forbids inline scripts.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  for (const link of document.querySelectorAll("a[data-back]")) {
    if (window.history.length > 1) {
      link.addEventListener("click", (event) => { event.preventDefault(); window.history.back(); });
    }
  }

  // A page that answers a form (the station's one-time set-up QR) takes the address of the plain page: reloading it
  // then shows that page instead of sending the form again (which registered another station).
  const answered = document.querySelector("[data-replace-url]");
  if (answered) window.history.replaceState(null, "", answered.dataset.replaceUrl);

  // Copy buttons next to a read-only field (a set-up link or code, a card link): the clipboard API needs a secure
  // page, so plain HTTP on a venue's network falls back to selecting the text and the older copy command.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (error) {
        field.select();
        copied = document.execCommand("copy");
      }
      if (copied) button.textContent = button.dataset.copied;
    });
  }

  for (const button of document.querySelectorAll("button[data-print]")) {
    button.addEventListener("click", () => window.print());
  }

  const poll = (url, every, onData) => {
    const tick = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok && onData(await response.json()) === false) return;
      } catch (error) {
        // Offline for a moment: keep the last numbers and try again.
      }
      window.setTimeout(tick, every);
    };
    window.setTimeout(tick, every);
  };

  const live = document.querySelector("[data-stats-url]");
  if (live) {
    poll(live.dataset.statsUrl, 5000, (stats) => {
      for (const cell of live.querySelectorAll("[data-stat]")) {
        const value = stats[cell.dataset.stat];
        if (value !== undefined && value !== null) cell.textContent = String(value);
      }
    });
  }

  const job = document.querySelector("[data-job-url]");
  if (job) {
    poll(job.dataset.jobUrl, 2000, (state) => {
      job.querySelector("[data-job=label]").textContent = state.label;
      job.querySelector("[data-job=progress]").textContent = state.progress;
      job.querySelector("[data-job=pace]").textContent = state.pace;
      if (state.status === "queued" || state.status === "running") return true;
      // The job has ended. The list of members who got no card is drawn by the server: load the page again once.
      if (state.failed > 0 && !document.getElementById("job-failures")) {
        window.location.reload();
      } else if (state.status === "done" && state.done > 0) {
        document.getElementById("job-sheets").hidden = false;
      }
      return false;
    });
  }
});
