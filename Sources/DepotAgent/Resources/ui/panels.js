// Depot web UI: the chat with the active model (streamed from /api/chat), the import panel
// (models in this machine's Ollama store and Hugging Face cache, adopted by /store/adopt) and
// the demo model for an empty store.
// Model output and file names are only ever set as text, never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const { call, formatBytes, showError, headers } = window.Depot;

  async function activeModel() {
    try {
      const status = await call("GET", "/model/status");
      return status && status.state === "ready" ? status.activeModel : null;
    } catch {
      return null;
    }
  }

  // ---- Chat ----------------------------------------------------------------

  const chat = { messages: [], controller: null };

  function addTurn(role, text) {
    const item = document.createElement("li");
    item.className = `turn ${role}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Model";
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    $("transcript").append(item);
    item.scrollIntoView({ block: "end" });
    return body;
  }

  function setSending(sending) {
    $("chat-send").hidden = sending;
    $("chat-stop").hidden = !sending;
    $("chat-input").disabled = sending;
  }

  async function send() {
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text || chat.controller) return;
    const model = await activeModel();
    if (!model) {
      showError("Activate a model first: the chat talks to the active model.");
      return;
    }
    input.value = "";
    addTurn("user", text);
    chat.messages.push({ role: "user", content: text });
    const answer = addTurn("assistant", "");
    answer.parentElement.dataset.state = "streaming";
    chat.controller = new AbortController();
    setSending(true);
    let reply = "";
    try {
      const response = await fetch("/api/chat", {
        method: "POST", headers: headers(true), signal: chat.controller.signal,
        body: JSON.stringify({ model, messages: chat.messages, stream: true }),
      });
      if (!response.ok) {
        const body = await response.text();
        let message = body;
        try { message = JSON.parse(body).error || body; } catch { /* not JSON */ }
        throw new Error(message);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) {
          if (!line.trim()) continue;
          const chunk = JSON.parse(line);
          if (chunk.error) throw new Error(chunk.error);
          if (chunk.message && chunk.message.content) {
            reply += chunk.message.content;
            answer.textContent = reply;
          }
          if (chunk.done) answer.parentElement.dataset.state = "done";
        }
      }
    } catch (error) {
      if (error.name === "AbortError") {
        answer.parentElement.dataset.state = "stopped";
      } else {
        answer.parentElement.dataset.state = "failed";
        showError(`The chat failed: ${error.message}`);
      }
    } finally {
      chat.messages.push({ role: "assistant", content: reply });
      chat.controller = null;
      setSending(false);
      $("chat-input").focus();
    }
  }

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("chat-stop").addEventListener("click", () => { if (chat.controller) chat.controller.abort(); });
  $("chat-clear").addEventListener("click", () => {
    if (chat.controller) chat.controller.abort();
    chat.messages = [];
    $("transcript").replaceChildren();
  });

  async function showChatModel() {
    const model = await activeModel();
    $("chat-with").textContent = model ? `With ${model}.` : "Activate a model to chat with it.";
  }

  // ---- Import --------------------------------------------------------------

  const ORIGINS = { ollama: "Ollama", huggingface: "Hugging Face" };
  const adopting = new Set();

  async function refreshFound() {
    let answer, installed;
    try {
      [answer, installed] = await Promise.all([call("GET", "/store/caches"), call("GET", "/model/list")]);
    } catch {
      return;
    }
    const have = new Set((installed.installed || []).map((model) => model.name));
    const rows = [];
    for (const cache of answer.caches || []) {
      for (const model of cache.found) rows.push({ ...model, root: cache.root });
    }
    const body = $("found");
    body.replaceChildren(...rows.map((model) => {
      const row = document.createElement("tr");
      row.dataset.model = model.name;
      const cells = [model.name, formatBytes(model.size), `${ORIGINS[model.origin] || model.origin}${model.projector ? " + projector" : ""}`];
      for (const [index, text] of cells.entries()) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (index === 1) cell.className = "num";
        row.append(cell);
      }
      const actions = document.createElement("td");
      actions.className = "actions";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "adopt";
      const done = have.has(model.name);
      button.textContent = done ? "Imported" : adopting.has(model.name) ? "Hashing…" : "Import";
      button.disabled = done || adopting.has(model.name);
      button.addEventListener("click", () => adopt(model));
      actions.append(button);
      row.append(actions);
      return row;
    }));
    $("found-empty").hidden = rows.length > 0;
  }

  async function adopt(model) {
    adopting.add(model.name);
    await refreshFound();
    try {
      await call("POST", "/store/adopt", { origin: model.origin, name: model.name });
    } catch (error) {
      showError(`Could not import ${model.name}: ${error.message}`);
    } finally {
      adopting.delete(model.name);
      await refreshFound();
    }
  }

  $("add-demo").addEventListener("click", async () => {
    $("add-demo").disabled = true;
    try {
      await call("POST", "/store/demo");
      location.reload();
    } catch (error) {
      showError(`Could not add the demo model: ${error.message}`);
      $("add-demo").disabled = false;
    }
  });

  showChatModel();
  refreshFound();
  setInterval(showChatModel, 2000);
  setInterval(refreshFound, 10000);
})();
