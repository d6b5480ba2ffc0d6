// Depot web UI: status banner, model picker, installed and available models, the mesh panel.
// Plain DOM, no framework. Live updates come from /events (server-sent events);
// while that stream is down, /model/status and /jobs are polled every second.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { formatBytes, oneDecimal } = window.Depot;

  const state = {
    status: null,                       // last /model/status object
    installed: [],                      // /model/list .installed
    available: [],                      // /model/list .available
    downloads: new Map(),               // model id -> {jobId, completed, total, stage, seen}
    jobModels: new Map(),               // job id -> model id
    unmapped: new Map(),                // job id -> latest job event not yet matched to a model
    swapping: null,                     // name of the model a swap request is in flight for
    busy: new Set(),                    // names with a delete in flight
    live: false,                        // the event stream is open
    seq: 0,                             // orders status/list updates from fetches and events
    statusSeq: 0,
    listSeq: 0,
    mesh: null,                         // last /mesh/overview object
  };

  // ---- API -----------------------------------------------------------------

  // An agent started with --token answers nothing without it: the page asks once and keeps
  // it in this browser (an event stream cannot carry it, so the page then polls).
  async function api(method, path, body, asked) {
    const init = { method, headers: { Accept: "application/json" } };
    const token = localStorage.getItem("depot-token");
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new Error("cannot reach the Depot agent");
    }
    if (response.status === 401 && !asked) {
      const given = window.prompt("This Depot agent needs its token (depot serve --token):");
      if (given) {
        localStorage.setItem("depot-token", given.trim());
        return api(method, path, body, true);
      }
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const message = (data && data.error) || text.trim() || response.statusText;
      throw new Error(message || `HTTP ${response.status}`);
    }
    return data;
  }

  // An update is applied only if nothing newer (a later fetch or any event) was applied first.
  async function refreshStatus() {
    const seq = ++state.seq;
    try {
      const status = await api("GET", "/model/status");
      applyStatus(status, seq);
    } catch (error) {
      if (!state.live) setConnection(`Agent unreachable: ${error.message}`);
    }
  }

  async function refreshList() {
    const seq = ++state.seq;
    try {
      const list = await api("GET", "/model/list");
      if (seq < state.listSeq) return;
      state.listSeq = seq;
      state.installed = list.installed || [];
      state.available = list.available || [];
      for (const model of state.installed) state.downloads.delete(model.name);
      render();
    } catch (error) {
      showError(`Could not load the model list: ${error.message}`);
    }
  }

  function applyStatus(status, seq) {
    if (!status || seq < state.statusSeq) return;
    state.statusSeq = seq;
    const previous = state.status;
    state.status = status;
    const pull = status.pull;
    const previousPull = previous && previous.pull;
    if (previousPull && previousPull.model && (!pull || pull.model !== previousPull.model)) {
      finishDownloads([previousPull.model]);   // the pull a swap started is over
    }
    if (pull && pull.model) {
      const download = state.downloads.get(pull.model) || { jobId: null };
      state.downloads.set(pull.model, {
        ...download, completed: pull.completedBytes, total: pull.totalBytes, stage: pull.stage, seen: true,
      });
    }
    const changed = !previous || previous.activeModel !== status.activeModel ||
      Boolean(previous.pull) !== Boolean(pull) || (previous.state !== status.state && status.state === "ready");
    render();
    if (changed && previous) refreshList();
  }

  // ---- Live updates --------------------------------------------------------

  function onModelEvent(status) {
    applyStatus(status, ++state.seq);
  }

  function onJobEvent(event) {
    const model = event.model || state.jobModels.get(event.id);
    if (!model) {
      state.unmapped.set(event.id, event);   // its POST /jobs answer has not arrived yet
      return;
    }
    state.jobModels.set(event.id, model);
    const download = state.downloads.get(model) || {};
    switch (event.stage) {
      case "ready":
        finishDownloads([model]);
        break;
      case "failed":
      case "cancelled":
        state.downloads.delete(model);
        if (event.stage === "failed") showError(`Download of ${model} failed: ${event.message || "unknown error"}`);
        render();
        refreshList();
        break;
      default:
        state.downloads.set(model, {
          ...download, jobId: event.id, completed: event.completedBytes, total: event.totalBytes,
          stage: event.stage, seen: true,
        });
        renderAvailable();
    }
  }

  // Shows 100% until the refreshed list has the model installed, then drops the progress.
  function finishDownloads(models) {
    for (const model of models) {
      const download = state.downloads.get(model);
      if (download) download.stage = "ready";
    }
    renderAvailable();
    refreshList().then(() => {
      for (const model of models) {
        const download = state.downloads.get(model);
        if (download && download.stage === "ready") state.downloads.delete(model);
      }
      render();
    });
  }

  // /jobs lists running, paused and failed jobs; a job that has left the list has finished.
  let pollingJobs = false;
  async function pollJobs(updateProgress) {
    if (pollingJobs) return;
    pollingJobs = true;
    try {
      const jobs = await api("GET", "/jobs");
      const present = new Set();
      for (const job of jobs || []) {
        const model = state.jobModels.get(job.id) || job.name;
        if (!model) continue;
        present.add(job.id);
        const download = state.downloads.get(model);
        if (download && download.jobId && download.jobId !== job.id) continue;
        if (job.state === "failed" || job.state === "cancelled") {
          if (download) {
            state.downloads.delete(model);
            if (job.state === "failed") showError(`Download of ${model} failed: ${job.message || "unknown error"}`);
          }
          continue;
        }
        if (!download && !state.available.some((m) => m.modelId === model)) continue;
        state.jobModels.set(job.id, model);
        if (updateProgress || !download) {
          state.downloads.set(model, {
            ...download, jobId: job.id, completed: job.completedBytes, total: job.totalBytes,
            stage: job.state === "running" ? "downloading" : job.state, seen: true,
          });
        } else {
          download.seen = true;
        }
      }
      // A job just accepted may take a moment to show up in /jobs.
      const finished = [];
      for (const [model, download] of state.downloads) {
        if (download.jobId && !present.has(download.jobId) && download.stage !== "ready" &&
            (download.seen || Date.now() - download.since > 3000)) finished.push(model);
      }
      renderAvailable();
      if (finished.length) finishDownloads(finished);
    } catch {
      // the next tick tries again
    } finally {
      pollingJobs = false;
    }
  }

  function connectEvents() {
    if (!window.EventSource) {
      setConnection("Live updates unavailable; polling every second");
      return;
    }
    const source = new EventSource("/events");
    source.addEventListener("open", () => {
      state.live = true;
      setConnection("Live");
      refreshStatus();   // catch up on anything missed while disconnected
      refreshList();
    });
    source.addEventListener("error", () => {
      state.live = false;
      setConnection(source.readyState === EventSource.CLOSED
        ? "Live updates unavailable; polling every second"
        : "Reconnecting; polling every second");
    });
    source.addEventListener("model", (e) => parseThen(e, onModelEvent));
    source.addEventListener("job", (e) => parseThen(e, onJobEvent));
  }

  function parseThen(event, handler) {
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    handler(data);
  }

  // Credits and peers change slowly, and asking costs the agent a call to its coordinator.
  async function refreshMesh() {
    try {
      state.mesh = await api("GET", "/mesh/overview");
      renderMesh();
    } catch {
      // The status banner already says when the agent cannot be reached.
    }
  }

  let ticks = 0;
  function tick() {
    ticks += 1;
    if (!state.live) {
      refreshStatus();
      pollJobs(true);
    } else if (ticks % 5 === 0) {
      refreshStatus();                                   // a safety net for missed events
      if (state.downloads.size > 0) pollJobs(false);
    }
    if (ticks % 15 === 0) renderBanner();                // keeps "last inference" age current
    if (ticks % 5 === 0) refreshMesh();
  }

  // ---- Actions -------------------------------------------------------------

  async function activate(name) {
    clearError();
    state.swapping = name;
    render();
    try {
      await api("POST", "/model/swap", { model: name });
    } catch (error) {
      showError(`Could not activate ${name}: ${error.message}`);
    } finally {
      state.swapping = null;
      await Promise.all([refreshStatus(), refreshList()]);
    }
  }

  async function remove(name) {
    clearError();
    if (!window.confirm(`Delete ${name}? Its files are removed from this device.`)) return;
    state.busy.add(name);
    renderInstalled();
    try {
      await api("DELETE", "/api/delete", { model: name });
    } catch (error) {
      showError(`Could not delete ${name}: ${error.message}`);
    } finally {
      state.busy.delete(name);
      await Promise.all([refreshList(), refreshStatus()]);
    }
  }

  async function download(id) {
    clearError();
    state.downloads.set(id, { jobId: null, completed: 0, total: 0, stage: "starting", seen: false });
    renderAvailable();
    try {
      const job = await api("POST", "/jobs", { model: id });
      if (job && job.id) {
        state.jobModels.set(job.id, id);
        const current = state.downloads.get(id);
        if (current && !current.jobId) Object.assign(current, { jobId: job.id, since: Date.now() });
        const early = state.unmapped.get(job.id);
        state.unmapped.delete(job.id);
        if (early) onJobEvent(early);
      }
    } catch (error) {
      state.downloads.delete(id);
      showError(`Could not download ${id}: ${error.message}`);
      renderAvailable();
    }
  }

  // ---- Rendering -----------------------------------------------------------

  const STATE_LABELS = { idle: "Idle", loading: "Loading…", ready: "Ready", failed: "Failed" };

  function render() {
    renderBanner();
    renderPicker();
    renderInstalled();
    renderAvailable();
  }

  function activeName() {
    if (state.status) return state.status.activeModel || "";
    const active = state.installed.find((m) => m.active);
    return active ? active.name : "";
  }

  function renderBanner() {
    const status = state.status || { state: "idle", activeModel: null };
    const banner = $("banner");
    const name = status.activeModel || "";
    banner.dataset.state = status.state || "idle";
    banner.dataset.model = name;
    $("banner-model").textContent = name || "No active model";
    $("banner-state").textContent = STATE_LABELS[status.state] || status.state || "";

    let detail = "";
    if (status.pull) {
      detail = `Downloading ${status.pull.model}: ${percent(status.pull.completedBytes, status.pull.totalBytes)}%`;
    } else if (status.state === "failed") {
      detail = status.error || "unknown error";
    } else if (status.state === "ready" && status.paramSize != null) {
      detail = `${formatParams(status.paramSize)} parameters`;
    }
    if (status.state === "ready" && status.currentLoad > 0) {
      detail += `${detail ? " · " : ""}${status.currentLoad} in flight`;
    }
    if (status.error && status.state !== "failed") {
      detail += `${detail ? " · " : ""}last swap failed: ${status.error}`;   // e.g. fell back to the previous model
    }
    $("banner-detail").textContent = detail;
    $("banner-detail").classList.toggle("warn", Boolean(status.error));

    const inference = $("banner-inference");
    if (status.lastInferenceAt) {
      inference.textContent = `Last inference ${formatAge(status.lastInferenceAt)}`;
      inference.title = new Date(status.lastInferenceAt).toLocaleString();
    } else {
      inference.textContent = name ? "No inference yet" : "";
      inference.title = "";
    }
  }

  function renderPicker() {
    const picker = $("picker");
    const active = activeName();
    const names = state.installed.map((m) => m.name);
    if (active && !names.includes(active)) names.push(active);
    const wanted = ["", ...names];
    const current = [...picker.options].map((o) => o.value);
    if (wanted.join("\n") !== current.join("\n")) {
      picker.replaceChildren(...wanted.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name || "None";
        option.disabled = name === "";
        return option;
      }));
    }
    picker.value = state.swapping || active;
    picker.disabled = state.swapping !== null || names.length === 0;
  }

  function renderInstalled() {
    const active = activeName();
    const modelState = state.status ? state.status.state : "idle";
    reconcile($("installed"), state.installed, (m) => m.name, createInstalledRow, (row, model) => {
      const isActive = model.name === active;
      row.classList.toggle("is-active", isActive);
      row.querySelector(".title").textContent = model.name;
      row.querySelector(".badge").hidden = !isActive;
      row.querySelector(".size").textContent = formatBytes(model.sizeBytes);
      row.querySelector(".quant").textContent = model.quantization || "—";
      row.querySelector(".params").textContent = formatParams(model.paramSize);
      const apps = model.apps || [];
      row.querySelector(".apps").textContent = apps.length ? apps.join(", ") : "—";
      const activateButton = row.querySelector(".activate");
      activateButton.disabled = state.swapping !== null ||
        (isActive && (modelState === "ready" || modelState === "loading"));
      activateButton.textContent = state.swapping === model.name ? "Activating…" : "Activate";
      const deleteButton = row.querySelector(".delete");
      deleteButton.disabled = state.busy.has(model.name);
      deleteButton.textContent = state.busy.has(model.name) ? "Deleting…" : "Delete";
    });
    $("installed-empty").hidden = state.installed.length > 0;
  }

  function renderAvailable() {
    reconcile($("available"), state.available, (m) => m.modelId, createAvailableRow, (row, model) => {
      row.querySelector(".title").textContent = model.displayName || model.modelId;
      row.querySelector(".id").textContent = model.displayName && model.displayName !== model.modelId ? model.modelId : "";
      row.querySelector(".size").textContent = formatBytes(model.fileSizeBytes);
      row.querySelector(".quant").textContent = model.quantization || "—";
      row.querySelector(".params").textContent = formatParams(model.paramSize);

      const job = state.downloads.get(model.modelId);
      const progress = row.querySelector(".progress");
      const stage = row.querySelector(".stage");
      const button = row.querySelector(".download");
      if (job) {
        const pct = job.stage === "ready" ? 100 : percent(job.completed, job.total);
        progress.hidden = false;
        progress.setAttribute("aria-valuenow", String(pct));
        progress.querySelector(".bar").style.width = `${pct}%`;
        progress.querySelector(".pct").textContent = `${pct}%`;
        stage.textContent = STAGE_LABELS[job.stage] || job.stage || "";
        button.disabled = true;
        button.textContent = job.stage === "paused" || job.stage === "interrupted" ? "Paused" : "Downloading…";
      } else {
        progress.hidden = true;
        stage.textContent = "";
        button.disabled = false;
        button.textContent = "Download";
      }
    });
    $("available-empty").hidden = state.available.length > 0;
  }

  const STAGE_LABELS = {
    starting: "starting", idle: "queued", resolving: "resolving", checkingCache: "checking cache",
    downloading: "downloading", verifying: "verifying", ready: "installing", paused: "paused",
    interrupted: "interrupted",
  };

  function createInstalledRow(name) {
    const row = document.createElement("tr");
    row.dataset.model = name;
    row.innerHTML =
      '<td class="name"><span class="title"></span> <span class="badge" hidden>active</span></td>' +
      '<td class="size num"></td><td class="quant"></td><td class="params num"></td><td class="apps"></td>' +
      '<td class="actions"><button type="button" class="activate">Activate</button>' +
      '<button type="button" class="delete">Delete</button></td>';
    row.querySelector(".activate").addEventListener("click", () => activate(name));
    row.querySelector(".delete").addEventListener("click", () => remove(name));
    return row;
  }

  function createAvailableRow(id) {
    const row = document.createElement("tr");
    row.dataset.model = id;
    row.innerHTML =
      '<td class="name"><span class="title"></span> <span class="id muted"></span></td>' +
      '<td class="size num"></td><td class="quant"></td><td class="params num"></td>' +
      '<td class="progress-cell"><div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" hidden>' +
      '<div class="bar"></div><span class="pct">0%</span></div><span class="stage muted"></span></td>' +
      '<td class="actions"><button type="button" class="download">Download</button></td>';
    row.querySelector(".download").addEventListener("click", () => download(id));
    return row;
  }

  function renderMesh() {
    const mesh = state.mesh;
    if (!mesh) return;
    $("mesh-agent").textContent = mesh.agentId + (mesh.coordinator ? ` · coordinator ${mesh.coordinator}` : " · no coordinator");
    const seeding = mesh.seeding;
    $("mesh-seeding").textContent = seeding
      ? `${seeding.uploadsActive} of ${seeding.maximumUploads} upload slots in use · ${formatBytes(seeding.bytesSent)} sent to peers` +
        ` in ${seeding.uploadsStarted} uploads` + (seeding.bytesPerSecond ? ` · capped at ${formatBytes(seeding.bytesPerSecond)}/s` : "")
      : "off (depot serve --seed shares this agent's models with its peers)";
    const credits = mesh.credits;
    $("mesh-credits").textContent = credits
      ? `${credits.credits.toFixed(3)} credits for ${formatBytes(credits.bytesCredited)} seeded` +
        (credits.pendingCredits > 0 ? ` · ${credits.pendingCredits.toFixed(3)} pending` : "")
      : mesh.creditsError || "no coordinator to keep them";
    const peers = mesh.nearby || [];
    reconcile($("peers"), peers, (p) => p.agentId, createPeerRow, (row, peer) => {
      row.querySelector(".address").textContent = peer.address;
      row.querySelector(".model").textContent = peer.activeModel || "—";
      row.querySelector(".load").textContent = peer.currentLoad < 0 ? "loading" : String(peer.currentLoad);
      row.querySelector(".seeds").textContent = String((peer.seeds || []).length);
      row.querySelector(".seen").textContent = formatAge(peer.lastSeen);
    });
    $("peers-empty").hidden = peers.length > 0;
    $("peers-empty").textContent = mesh.nearby ? "No nearby peers heard yet." : "Nearby discovery is off (depot serve --discovery).";
    reconcile($("mesh-models"), mesh.models || [], (m) => m.name, createMeshModelRow, (row, model) => {
      row.querySelector(".title").textContent = model.name;
      row.querySelector(".seeders").textContent = model.nearbySeeders.length ? model.nearbySeeders.join(", ") : "nobody nearby";
    });
  }

  function createPeerRow(id) {
    const row = document.createElement("tr");
    row.dataset.model = id;
    for (const name of ["address", "model", "load", "seeds", "seen"]) {
      const cell = document.createElement("td");
      cell.className = name;
      row.append(cell);
    }
    return row;
  }

  function createMeshModelRow(name) {
    const row = document.createElement("tr");
    row.dataset.model = name;
    const title = document.createElement("td");
    title.className = "title";
    const seeders = document.createElement("td");
    seeders.className = "seeders";
    row.append(title, seeders);
    return row;
  }

  // Updates rows in place (keyed by data-model) so buttons survive a refresh.
  function reconcile(body, items, keyOf, create, update) {
    const existing = new Map([...body.children].map((row) => [row.dataset.model, row]));
    let previous = null;
    for (const item of items) {
      const key = keyOf(item);
      let row = existing.get(key);
      if (row) existing.delete(key); else row = create(key);
      update(row, item);
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (row !== expected) body.insertBefore(row, expected);
      previous = row;
    }
    for (const row of existing.values()) row.remove();
  }

  // ---- Messages ------------------------------------------------------------

  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error-text").textContent = "";
    $("error").hidden = true;
  }

  function setConnection(text) {
    $("connection").textContent = text;
  }

  // ---- Formatting ----------------------------------------------------------

  function percent(completed, total) {
    if (!total || total <= 0) return 0;
    return Math.max(0, Math.min(100, Math.floor((completed / total) * 100)));
  }

  // paramSize is in billions (as in the catalog); a value of 1000 or more is taken as a raw count.
  function formatParams(size) {
    if (size == null) return "—";
    const count = size >= 1000 ? size : size * 1e9;
    for (const [suffix, scale] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["K", 1e3]]) {
      if (count >= scale) return oneDecimal(count / scale) + suffix;
    }
    return String(Math.round(count));
  }

  function formatAge(iso) {
    const then = new Date(iso).getTime();
    if (Number.isNaN(then)) return iso;
    const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (seconds < 10) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(then).toLocaleString();
  }

  // ---- Start ---------------------------------------------------------------

  $("picker").addEventListener("change", (event) => {
    const name = event.target.value;
    if (name && name !== activeName()) activate(name);
  });
  $("error-close").addEventListener("click", clearError);

  Promise.all([refreshStatus(), refreshList()]).then(() => pollJobs(true));
  refreshMesh();
  connectEvents();
  setInterval(tick, 1000);
})();
