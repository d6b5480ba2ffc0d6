// Depot web UI: what the panels share. Requests carry the token the page was given (app.js
// asks for it once); sizes read as `depot list` prints them; errors go to the page's banner.
"use strict";

window.Depot = (() => {
  async function call(method, path, body) {
    const init = { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) };
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) throw new Error((data && data.error) || text.trim() || `HTTP ${response.status}`);
    return data;
  }

  function oneDecimal(value) {
    return value >= 100 ? String(Math.round(value)) : String(Math.floor(value * 10) / 10);
  }

  // Decimal units, as `depot list` prints them.
  function formatBytes(bytes) {
    if (bytes == null) return "—";
    for (const [suffix, scale] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["KB", 1e3]]) {
      if (bytes >= scale) return `${oneDecimal(bytes / scale)} ${suffix}`;
    }
    return `${bytes} B`;
  }

  function showError(message) {
    document.getElementById("error-text").textContent = message;
    document.getElementById("error").hidden = false;
  }

  // The token goes in headers, also for requests made without `call` (a streamed chat).
  function headers(json) {
    const result = { Accept: "application/json" };
    const token = localStorage.getItem("depot-token");
    if (token) result.Authorization = `Bearer ${token}`;
    if (json) result["Content-Type"] = "application/json";
    return result;
  }

  return { call, formatBytes, oneDecimal, showError, headers };
})();
