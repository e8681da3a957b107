// The chat page: keeps the conversation in memory, sends all of it with every turn
// (the API is stateless) and renders the streamed reply token by token.
"use strict";

const conversationEl = document.getElementById("conversation");
const form = document.getElementById("composer");
const input = document.getElementById("input");
const sendButton = document.getElementById("send");
const newChatButton = document.getElementById("new-chat");
const temperature = document.getElementById("temperature");
const temperatureValue = document.getElementById("temperature-value");
const modelNameEl = document.getElementById("model-name");

let modelId = null;
let history = [];          // [{role, content}] of completed turns, sent with each request
let controller = null;     // aborts the reply in flight (new chat)

function setState(state) {
  // Exposed on <body> so people (and the browser test) can see whether a reply is streaming.
  document.body.dataset.state = state;
  sendButton.disabled = state === "streaming";
}

function addMessage(role, text) {
  const el = document.createElement("div");
  el.className = "message " + role;
  el.dataset.role = role;
  el.textContent = text;   // textContent, never innerHTML: model output is not trusted markup
  conversationEl.appendChild(el);
  conversationEl.scrollTop = conversationEl.scrollHeight;
  return el;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return `${response.status}: ${body.error.message}`;
  } catch (_) { /* not JSON: fall through */ }
  return `${response.status}: ${response.statusText || "request failed"}`;
}

async function loadModel() {
  try {
    const response = await fetch("/v1/models");
    if (!response.ok) throw new Error(await errorMessage(response));
    const body = await response.json();
    modelId = body.data[0].id;
    modelNameEl.textContent = modelId;
  } catch (err) {
    modelNameEl.textContent = "model unavailable";
    addMessage("error", "Could not reach the server: " + err.message);
  }
}

// Server-Sent Events from a fetch body: events are separated by a blank line and each
// carries one "data: ..." line (OpenAI's chunk format, ending with "data: [DONE]").
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();   // stream mode keeps split UTF-8 sequences whole
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data:")) yield line.slice(5).trim();
      }
    }
  }
}

async function send(text) {
  if (!modelId) await loadModel();
  if (!modelId) return;
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const replyEl = addMessage("assistant", "");
  replyEl.classList.add("streaming");
  setState("streaming");
  controller = new AbortController();
  const mine = controller;
  let reply = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: modelId,
        messages: history,
        temperature: Number(temperature.value),
        stream: true,
      }),
      signal: mine.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of sseData(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        reply += delta.content;
        replyEl.textContent = reply;
        conversationEl.scrollTop = conversationEl.scrollHeight;
      }
    }
    history.push({ role: "assistant", content: reply });
  } catch (err) {
    if (mine.signal.aborted) return;   // new chat: the old conversation is gone anyway
    history.pop();                     // the turn failed: let the user send it again
    if (!reply) replyEl.remove();
    addMessage("error", err.message);
  } finally {
    replyEl.classList.remove("streaming");
    if (controller === mine) {
      controller = null;
      setState("idle");
    }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || document.body.dataset.state === "streaming") return;
  input.value = "";
  send(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

newChatButton.addEventListener("click", () => {
  if (controller) controller.abort();
  controller = null;
  history = [];
  conversationEl.replaceChildren();
  setState("idle");
  input.focus();
});

temperature.addEventListener("input", () => {
  temperatureValue.textContent = Number(temperature.value).toFixed(1);
});

setState("idle");
loadModel();
input.focus();
