// The emulator's agent console. Plain DOM, no build step. Every piece of text coming from the
// API is set with textContent, never innerHTML, so message text cannot inject markup.
"use strict";

const POLL_MS = 1000;
const TYPING_IDLE_MS = 3000;
const state = { info: null, channels: [], integrations: [], contacts: [] };
const typingTimers = new Map();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = document.getElementById("console-error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = data && data.errors ? data.errors.map((e) => e.message).join("; ") : text;
    throw new Error(`${method} ${path}: ${response.status} ${detail}`);
  }
  return data;
}

async function act(method, path, body) {
  try {
    const result = await api(method, path, body);
    showError("");
    await refresh();
    return result;
  } catch (error) {
    showError(error.message);
    return null;
  }
}

// -- integrations -------------------------------------------------------------------------
async function addChannel(integration) {
  // As CXone's admin UI does: mint a one-time token and open the integration's Action URL.
  const minted = await act("POST", "/emulator/one-time-tokens", {});
  if (!minted) return;
  const url = new URL(integration.actionUrl);
  url.searchParams.set("userId", String(minted.userId));
  url.searchParams.set("brandId", String(minted.brandId));
  url.searchParams.set("token", minted.token);
  url.searchParams.set("backUrl", `${state.info.url}/console`);
  url.searchParams.set("apiHost", state.info.url);
  window.open(url.toString(), "_blank");
}

function renderIntegrations() {
  const list = document.getElementById("integrations");
  list.replaceChildren();
  if (!state.integrations.length) list.append(el("li", { class: "empty", text: "none registered" }));
  for (const integration of state.integrations) {
    const button = el("button", {
      "data-testid": `add-channel-${integration.id}`,
      text: "Add channel",
      onclick: () => addChannel(integration),
    });
    if (!integration.actionUrl) {
      button.disabled = true;
      button.title = "this integration has no Action URL";
    }
    list.append(
      el("li", { "data-testid": `integration-${integration.id}` },
        el("strong", { text: integration.name }),
        el("span", { class: "muted", text: `${integration.id} · ${integration.replyStyle}` }),
        button),
    );
  }
}

// -- typing -------------------------------------------------------------------------------
function typingInput(contactId) {
  if (!typingTimers.has(contactId)) {
    api("POST", `/emulator/contacts/${contactId}/typing`, { typing: true }).catch((e) => showError(e.message));
  } else {
    clearTimeout(typingTimers.get(contactId));
  }
  typingTimers.set(contactId, setTimeout(() => typingStopped(contactId), TYPING_IDLE_MS));
}

function typingStopped(contactId) {
  if (!typingTimers.has(contactId)) return;
  clearTimeout(typingTimers.get(contactId));
  typingTimers.delete(contactId);
  api("POST", `/emulator/contacts/${contactId}/typing`, { typing: false }).catch((e) => showError(e.message));
}

async function sendReply(contactId, input) {
  const text = input.value.trim();
  if (!text) return;
  typingStopped(contactId);
  input.value = "";
  await act("POST", `/emulator/contacts/${contactId}/reply`, { text });
}

// A sample of each rich type (QUICK_REPLIES, LIST_PICKER, …), fetched once from the emulator.
let richSamples = null;
const RICH_LABELS = {
  QUICK_REPLIES: "Quick replies", LIST_PICKER: "List picker", RICH_LINK: "Rich link", ADAPTIVE_CARD: "Adaptive card",
};

async function sendRich(contactId, picker) {
  if (!picker.value) return;
  if (!richSamples) richSamples = await api("GET", "/emulator/rich-samples").catch((e) => { showError(e.message); return null; });
  const content = richSamples && richSamples[picker.value];
  if (!content) return;
  picker.value = "";
  await act("POST", `/emulator/contacts/${contactId}/reply`, { messageContent: content });
}

// What a transcript line shows: the text, a rich message's type and fallback, a choice's postback.
function messageSummary(message) {
  const content = message.messageContent || {};
  const payload = content.payload || {};
  if (content.type === "TEXT" || !content.type) {
    const text = typeof payload.text === "string" ? payload.text : "";
    return typeof content.postback === "string" ? `${text} (postback: ${content.postback})` : text;
  }
  return `[${RICH_LABELS[content.type] || content.type}] ${content.fallbackText || ""}`.trim();
}

// -- contacts -----------------------------------------------------------------------------
// A customer whose platform sent no name is shown as a visitor with the end of their id.
function customerLabel(contact) {
  if (contact.customerName && contact.customerName !== contact.customerId) return contact.customerName;
  return `Visitor …${String(contact.customerId || "").slice(-6)}`;
}

// Agent messages carry the agent (`authorUser`); an outbound message without one was sent by
// the middleware itself (an idle warning, a closing note).
function authorLabel(contact, message) {
  if (message.direction === "inbound") return customerLabel(contact);
  const agent = message.authorUser;
  if (!agent) return "Automated";
  const name = agent.nickname || [agent.firstName, agent.surname].filter(Boolean).join(" ");
  if (agent.isBotUser) return `${name || "Bot"} (bot)`;
  return name ? `Agent ${name}` : "Agent";
}

function buildContact(contact) {
  const id = contact.id;
  const input = el("input", {
    "data-testid": `reply-input-${id}`,
    id: `reply-input-${id}`,
    placeholder: "Type a reply…",
    oninput: () => typingInput(id),
    onblur: () => typingStopped(id),
    onkeydown: (event) => { if (event.key === "Enter") sendReply(id, input); },
  });
  const picker = el("select", { "data-testid": `rich-picker-${id}`, "aria-label": "Rich message to send" },
    el("option", { value: "", text: "Rich message…" }),
    ...Object.entries(RICH_LABELS).map(([type, label]) => el("option", { value: type, text: label })));
  return el("article", { class: "contact", "data-testid": `contact-${id}`, id: `contact-${id}` },
    el("div", { class: "contact-head" },
      el("div", {},
        el("strong", { "data-role": "name" }),
        el("div", { class: "muted", "data-role": "sub" })),
      el("span", { class: "status", "data-testid": `contact-status-${id}` })),
    el("div", { class: "transcript", "data-testid": `transcript-${id}`, role: "log", tabindex: "0",
      "aria-label": `Transcript of contact ${id}` }),
    el("div", { class: "typing", "data-testid": `typing-indicator-${id}` }),
    el("div", { class: "actions" },
      input,
      el("button", { "data-testid": `reply-send-${id}`, text: "Send", onclick: () => sendReply(id, input) }),
      picker,
      el("button", { class: "secondary", "data-testid": `rich-send-${id}`, text: "Send rich",
        onclick: () => sendRich(id, picker) }),
      el("button", { class: "secondary", "data-testid": `accept-${id}`, text: "Accept",
        onclick: () => act("POST", `/emulator/contacts/${id}/accept`) }),
      el("button", { class: "secondary", "data-testid": `close-${id}`, text: "Close",
        onclick: () => act("POST", `/emulator/contacts/${id}/close`) })),
  );
}

function updateContact(node, contact) {
  const id = contact.id;
  node.querySelector('[data-role="name"]').textContent = customerLabel(contact);
  node.querySelector('[data-role="sub"]').textContent =
    `#${id} · ${contact.direction} · thread ${contact.threadIdOnExternalPlatform}`;
  const status = node.querySelector(`[data-testid="contact-status-${id}"]`);
  status.textContent = contact.status;
  status.className = `status status-${contact.status}`;
  node.querySelector(`[data-testid="typing-indicator-${id}"]`).textContent =
    contact.customerTyping ? `${customerLabel(contact)} is typing…` : "";
  const ended = ["closed", "resolved", "trashed"].includes(contact.status);
  for (const testid of [`reply-input-${id}`, `reply-send-${id}`, `rich-picker-${id}`, `rich-send-${id}`, `close-${id}`]) {
    node.querySelector(`[data-testid="${testid}"]`).disabled = ended;
  }
  node.querySelector(`[data-testid="accept-${id}"]`).disabled = contact.status !== "new";

  const transcript = node.querySelector(`[data-testid="transcript-${id}"]`);
  const signature = JSON.stringify(contact.messages.map((m) => [m.id, m.status]));
  if (transcript.dataset.signature === signature) return;
  transcript.dataset.signature = signature;
  transcript.replaceChildren(...contact.messages.map((message) => {
    const text = messageSummary(message);
    const who = authorLabel(contact, message);
    const automated = message.direction === "outbound" && !message.authorUser ? " automated" : "";
    return el("div", { class: `msg ${message.direction} ${message.status}${automated}`, "data-testid": `message-${message.id}` },
      el("span", { text }),
      el("span", { class: "meta", text: `${who} · ${message.status}` }));
  }));
  transcript.scrollTop = transcript.scrollHeight;
}

// -- channels -----------------------------------------------------------------------------
function buildChannel(channel) {
  const id = channel.id;
  const customer = el("input", { "data-testid": `outbound-customer-${id}`, placeholder: "customer id" });
  const text = el("input", { "data-testid": `outbound-text-${id}`, placeholder: "first message" });
  const start = async () => {
    if (!customer.value.trim() || !text.value.trim()) return;
    const done = await act("POST", `/emulator/channels/${id}/outbound`,
      { customerId: customer.value.trim(), text: text.value.trim() });
    if (done) { customer.value = ""; text.value = ""; }
  };
  return el("section", { class: "channel", "data-testid": `channel-${id}`, id: `channel-${id}` },
    el("div", { class: "channel-head" },
      el("div", {},
        el("h3", { "data-role": "name" }),
        el("div", { class: "muted", "data-role": "sub" })),
      el("div", { class: "outbound-form" }, customer, text,
        el("button", { "data-testid": `outbound-send-${id}`, text: "Start outbound", onclick: start }))),
    el("div", { class: "contacts", "data-testid": `contacts-${id}` }),
  );
}

function renderChannels() {
  const root = document.getElementById("channels");
  const wanted = new Set(state.channels.map((c) => `channel-${c.id}`));
  for (const node of [...root.children]) if (!wanted.has(node.id)) node.remove();
  if (!state.channels.length && !root.querySelector(".empty")) {
    root.append(el("p", { class: "empty", text: "No channels yet. Add one from an integration." }));
  }
  if (state.channels.length) root.querySelector(".empty")?.remove();

  for (const channel of state.channels) {
    let node = document.getElementById(`channel-${channel.id}`);
    if (!node) { node = buildChannel(channel); root.append(node); }
    node.querySelector('[data-role="name"]').textContent = channel.name;
    node.querySelector('[data-role="sub"]').textContent =
      `${channel.id} · integration ${channel.channelIntegrationId}`;

    const list = node.querySelector(`[data-testid="contacts-${channel.id}"]`);
    // Newest first, so a fresh conversation appears at the top.
    const contacts = state.contacts.filter((c) => c.channelId === channel.id)
      .sort((a, b) => Number(b.id) - Number(a.id));
    const keep = new Set(contacts.map((c) => `contact-${c.id}`));
    for (const child of [...list.children]) if (!keep.has(child.id)) child.remove();
    contacts.forEach((contact, index) => {
      let card = document.getElementById(`contact-${contact.id}`);
      if (!card) card = buildContact(contact);
      if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
      updateContact(card, contact);
    });
    if (!contacts.length) list.replaceChildren(el("p", { class: "empty", text: "No conversations." }));
  }
}

// -- polling ------------------------------------------------------------------------------
async function refresh() {
  const [channels, integrations, contacts] = await Promise.all([
    api("GET", "/emulator/channels"),
    api("GET", "/emulator/integrations"),
    api("GET", "/emulator/contacts"),
  ]);
  state.channels = channels.data;
  state.integrations = integrations.data;
  state.contacts = contacts.data;
  renderIntegrations();
  renderChannels();
}

async function poll() {
  try { await refresh(); } catch (error) { showError(error.message); }
  setTimeout(poll, POLL_MS);
}

async function start() {
  state.info = await api("GET", "/emulator/info");
  document.getElementById("info").textContent =
    `brand ${state.info.brandId} · tenant ${state.info.tenantId} · DE API ${state.info.apiUrl}`;
  document.body.dataset.ready = "true";
  poll();
}

start().catch((error) => showError(error.message));
