// Depot web UI: every download on this device (from any app, from /jobs) with its rate and
// what is left, to pause, resume or cancel; and the store against its disk, with the prune
// plan for a budget, carried out only once confirmed.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const { call, formatBytes, showError } = window.Depot;

  function formatSeconds(seconds) {
    if (!Number.isFinite(seconds)) return "—";
    if (seconds < 60) return `${Math.ceil(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  }

  function cell(text, className) {
    const element = document.createElement("td");
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  function button(label, className, action) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.className = className;
    element.addEventListener("click", action);
    return element;
  }

  // ---- Downloads -----------------------------------------------------------

  const samples = new Map();   // job id -> {bytes, at, rate}

  function rateOf(job, now) {
    const last = samples.get(job.id);
    let rate = last ? last.rate : 0;
    if (last && job.state === "running" && now > last.at) {
      const instant = Math.max(0, job.completedBytes - last.bytes) / ((now - last.at) / 1000);
      rate = last.rate ? 0.6 * last.rate + 0.4 * instant : instant;   // smoothed
    }
    if (job.state !== "running") rate = 0;
    samples.set(job.id, { bytes: job.completedBytes, at: now, rate });
    return rate;
  }

  async function refreshJobs() {
    let jobs;
    try { jobs = await call("GET", "/jobs"); } catch { return; }
    const now = Date.now();
    const rows = (jobs || []).filter((job) => job.state !== "cancelled").map((job) => {
      const row = document.createElement("tr");
      row.dataset.job = job.id;
      row.dataset.state = job.state;
      const rate = rateOf(job, now);
      const fraction = job.totalBytes ? Math.min(1, job.completedBytes / job.totalBytes) : 0;
      const progress = document.createElement("td");
      progress.className = "progress-cell";
      const bar = document.createElement("div");
      bar.className = "progress";
      const fill = document.createElement("div");
      fill.className = "bar";
      fill.style.width = `${(fraction * 100).toFixed(1)}%`;
      const label = document.createElement("span");
      label.className = "pct";
      label.textContent = `${(fraction * 100).toFixed(1)} %`;
      bar.append(fill, label);
      const stage = document.createElement("span");
      stage.className = "stage muted";
      stage.textContent = `${job.state}${job.message ? `: ${job.message}` : ""} · ${formatBytes(job.completedBytes)} of ${formatBytes(job.totalBytes)}`;
      progress.append(bar, stage);
      const actions = document.createElement("td");
      actions.className = "actions";
      if (job.state === "running") actions.append(button("Pause", "pause", () => act("POST", `/jobs/${job.id}/pause`)));
      else actions.append(button("Resume", "resume", () => act("POST", `/jobs/${job.id}/resume`)));
      actions.append(button("Cancel", "cancel delete", () => {
        if (window.confirm(`Cancel the download of ${job.name || job.source}? What it fetched is deleted.`)) act("DELETE", `/jobs/${job.id}`);
      }));
      row.append(cell(job.name || job.source, "name"), progress, cell(rate ? `${formatBytes(rate)}/s` : "—", "num rate"),
                 cell(rate ? formatSeconds((job.totalBytes - job.completedBytes) / rate) : "—", "num left"), actions);
      return row;
    });
    $("jobs").replaceChildren(...rows);
    $("jobs-empty").hidden = rows.length > 0;
  }

  async function act(method, path) {
    try {
      await call(method, path);
    } catch (error) {
      showError(error.message);
    }
    refreshJobs();
  }

  // ---- Storage -------------------------------------------------------------

  let planned = null;   // {budget, names}: what the user saw

  async function refreshStorage() {
    let usage;
    try { usage = await call("GET", "/store/usage"); } catch { return; }
    const total = usage.diskTotalBytes || 0, free = usage.diskFreeBytes || 0;
    if (total) {
      const store = usage.storeBytes / total, other = Math.max(0, (total - free - usage.storeBytes) / total);
      $("usage-store").style.width = `${(store * 100).toFixed(2)}%`;
      $("usage-other").style.width = `${(other * 100).toFixed(2)}%`;
    }
    $("usage-text").textContent = `Models: ${formatBytes(usage.storeBytes)}` +
      (total ? ` · free: ${formatBytes(free)} of ${formatBytes(total)}` : "");
    $("usage").setAttribute("aria-label", $("usage-text").textContent);
    $("storage-models").replaceChildren(...usage.models.map((model) => {
      const row = document.createElement("tr");
      row.dataset.model = model.name;
      row.append(cell(model.name, "name"), cell(formatBytes(model.sizeBytes), "num"),
                 cell((model.apps.length ? model.apps.join(", ") : "no app") + (model.pinned ? " (pinned)" : ""), "apps"));
      return row;
    }));
  }

  async function plan(budget, carryOut) {
    const request = { maxBytes: budget, dryRun: !carryOut };
    if (carryOut) request.expect = planned.names;
    const result = await call("POST", "/store/prune", request);
    if (!carryOut) planned = { budget, names: result.removals.map((removal) => removal.name) };
    const summary = result.removals.length === 0
      ? (result.fits ? "The store already fits: nothing would go." : "Nothing can go: what is left is pinned.")
      : `${carryOut ? "Removed" : "Would remove"} ${result.removals.length} model${result.removals.length === 1 ? "" : "s"}, ` +
        `${formatBytes(result.bytesReclaimed)} back; the store ${carryOut ? "is" : "would be"} ${formatBytes(result.bytesAfter)}` +
        (result.fits ? "." : ", still over the budget (pinned models stay).");
    $("prune-summary").textContent = summary;
    $("prune-removals").replaceChildren(...result.removals.map((removal) => {
      const item = document.createElement("li");
      item.dataset.model = removal.name;
      item.textContent = `${removal.name} · ${formatBytes(removal.bytesReclaimed)}` + (removal.apps.length ? ` · used by ${removal.apps.join(", ")}` : "");
      return item;
    }));
    $("prune-confirm").hidden = carryOut || result.removals.length === 0;
    $("prune-plan").hidden = false;
  }

  $("prune-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try { await plan(Math.round(Number($("prune-budget").value) * 1e9), false); } catch (error) { showError(`Could not plan: ${error.message}`); }
  });

  $("prune-confirm").addEventListener("click", async () => {
    if (planned === null || !window.confirm("Remove these models from this device?")) return;
    try { await plan(planned.budget, true); } catch (error) { showError(`Could not prune: ${error.message}`); }
    refreshStorage();
  });

  refreshJobs();
  refreshStorage();
  setInterval(refreshJobs, 1000);
  setInterval(refreshStorage, 5000);
})();
