// Switchboard dashboard, messages of one account: send a text and see the recent chats and messages,
// live. Plain browser JavaScript, no build step; uses what app.js shares as window.Switchboard (the
// signed-in REST client and the Socket.IO events) and offers window.SwitchboardMessages.open(id).
"use strict";

(() => {
  const CHATS_LIMIT = 20;
  const MESSAGES_LIMIT = 20;

  /** Receipts (account.message_ack, GET …/messages/:id) in words, and their order: they only move forward. */
  const ACK_TEXT = {
    pending: "Sending",
    uncertain: "May not have been sent",
    sent: "Sent",
    delivered: "Delivered",
    read: "Read",
    played: "Played",
    failed: "Failed",
  };
  const ACK_RANK = { pending: 0, uncertain: 0, sent: 1, delivered: 2, read: 3, played: 4, failed: 5 };

  const $ = (id) => document.getElementById(id);
  const el = {
    dialog: $("messages-dialog"),
    title: $("messages-title"),
    close: $("messages-close"),
    notice: $("messages-notice"),
    chats: $("chats-list"),
    chatsEmpty: $("chats-empty"),
    threadTitle: $("thread-title"),
    thread: $("thread-list"),
    form: $("send-form"),
    to: $("send-to"),
    text: $("send-text"),
    submit: $("send-submit"),
    error: $("send-error"),
    result: $("send-result"),
  };

  const state = {
    accountId: null,
    /** Bumped on every open and close: answers for an earlier view are dropped. */
    generation: 0,
    chats: [],
    chatId: null,
    /** @type {Map<string, string>} message id → its latest receipt status */
    acks: new Map(),
    /** Sent messages whose status was asked for once (GET …/messages/:id). */
    asked: new Set(),
    /** The Idempotency-Key of the message in the form: kept while its outcome is unknown, so a retry
     * (or a second click) cannot send it twice; a new message gets a new key. */
    draftKey: null,
    sending: false,
    refreshing: null,
    refreshAgain: false,
    returnFocus: null,
  };

  const sb = () => window.Switchboard;
  const accountPath = () => `/api/v1/accounts/${encodeURIComponent(state.accountId)}`;

  // ---- words ----

  /** The chat a `to` lands in, as WhatsApp writes it (src/engines/directory.ts chatIdOf). */
  const chatIdOf = (to) => (to.includes("@") ? to : `${to.replace(/[^0-9]/g, "")}@c.us`);
  const phoneText = (chatId) => (/@c\.us$/.test(chatId) ? `+${chatId.split("@")[0]}` : chatId);
  function chatLabel(chat) {
    const number = phoneText(chat.id);
    return chat.name && chat.name !== chat.id && chat.name !== number ? `${chat.name} (${number})` : number;
  }

  function timeOf(seconds) {
    const d = new Date(seconds * 1000);
    if (!seconds || Number.isNaN(d.getTime())) return { iso: "", text: "" };
    const today = d.toDateString() === new Date().toDateString();
    return {
      iso: d.toISOString(),
      text: today ? d.toLocaleTimeString() : `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`,
    };
  }

  function errorText(err) {
    if (!err || err.status === undefined) {
      // No answer: the send may or may not have happened. The key is kept, so sending again is safe.
      return "The server could not be reached. Sending again will not send the message twice.";
    }
    if (err.type === "INVALID_STATE") return "The account is not connected, so nothing was sent.";
    if (err.type === "SEND_QUEUE_FULL") {
      const after = err.data && err.data.retryAfter;
      return `Too many messages are waiting for this account; try again${after ? ` in ${after} s` : " shortly"}.`;
    }
    return `Not sent: ${err.message}`;
  }

  /** Keeps the most advanced status of a message (receipts can arrive before the list shows it). */
  function noteAck(messageId, status) {
    if (!messageId || !(status in ACK_RANK)) return false;
    const prev = state.acks.get(messageId);
    if (prev && ACK_RANK[prev] >= ACK_RANK[status]) return false;
    state.acks.set(messageId, status);
    return true;
  }

  // ---- open / close ----

  function open(accountId) {
    const a = sb().account(accountId);
    if (!el.dialog.open) {
      const active = document.activeElement;
      state.returnFocus = active && active !== document.body ? active : null;
    }
    if (state.accountId !== accountId) {
      state.chats = [];
      state.chatId = null;
      state.draftKey = null;
      el.to.value = "";
      el.text.value = "";
      el.chats.replaceChildren();
      el.thread.replaceChildren();
    }
    state.accountId = accountId;
    state.generation++;
    el.dialog.dataset.accountId = accountId;
    el.title.textContent = `Messages of ${a ? sb().accountLabel(a) : accountId}`;
    el.error.textContent = "";
    el.result.textContent = "";
    el.notice.textContent = "";
    renderAccountState();
    if (!el.dialog.open) el.dialog.showModal();
    el.to.focus();
    refresh();
  }

  function close() {
    state.generation++;
    state.accountId = null;
    delete el.dialog.dataset.accountId;
    if (el.dialog.open) el.dialog.close();
  }

  /** Sending needs a connected account; the lists stay readable as they were. */
  function renderAccountState() {
    const a = sb().account(state.accountId);
    const connected = Boolean(a && a.status === "connected");
    el.submit.disabled = state.sending || !connected;
    el.dialog.dataset.connected = String(connected);
    if (!a) el.notice.textContent = "This account was removed.";
    else if (!connected)
      el.notice.textContent = `${sb().accountLabel(a)} is not connected (${sb().statusText(a.status).toLowerCase()}); messages cannot be sent or loaded now.`;
    else if (el.notice.dataset.kind === "state") el.notice.textContent = "";
    el.notice.dataset.kind = connected ? "" : "state";
  }

  // ---- loading ----

  /** Reloads the chats and the chosen chat's messages; calls made meanwhile coalesce into one more. */
  function refresh() {
    if (state.refreshing) {
      state.refreshAgain = true;
      return state.refreshing;
    }
    state.refreshing = (async () => {
      do {
        state.refreshAgain = false;
        const gen = state.generation;
        await loadChats(gen);
        await loadThread(gen);
      } while (state.refreshAgain && state.accountId);
    })().finally(() => {
      state.refreshing = null;
    });
    return state.refreshing;
  }

  async function loadChats(gen) {
    const a = sb().account(state.accountId);
    if (!a || a.status !== "connected") return;
    try {
      const data = await sb().api("GET", `${accountPath()}/chats?limit=${CHATS_LIMIT}`);
      if (gen !== state.generation) return;
      state.chats = (data && data.items) || [];
      if (!state.chatId && state.chats.length) state.chatId = state.chats[0].id;
      renderChats();
    } catch (err) {
      if (gen === state.generation) el.notice.textContent = `Could not load the chats: ${err.message}`;
    }
  }

  async function loadThread(gen) {
    const chatId = state.chatId;
    if (!chatId) return renderThread(null, []);
    const a = sb().account(state.accountId);
    if (!a || a.status !== "connected") return;
    try {
      const path = `${accountPath()}/chats/${encodeURIComponent(chatId)}/messages?limit=${MESSAGES_LIMIT}`;
      const data = await sb().api("GET", path);
      if (gen !== state.generation || chatId !== state.chatId) return;
      renderThread(chatId, (data && data.items) || []);
      askStatuses(gen, (data && data.items) || []);
    } catch (err) {
      if (gen !== state.generation || chatId !== state.chatId) return;
      // A chat chosen by sending to it exists only once the send went out: nothing to show yet.
      if (err.status === 404) renderThread(chatId, []);
      else el.notice.textContent = `Could not load the messages: ${err.message}`;
    }
  }

  /** Sent messages this page has no receipt for: their last known status (kept with the events). */
  async function askStatuses(gen, items) {
    const unknown = items.filter((m) => m.fromMe && !state.acks.has(m.id) && !state.asked.has(m.id));
    await Promise.all(
      unknown.map(async (m) => {
        state.asked.add(m.id);
        try {
          const r = await sb().api("GET", `${accountPath()}/messages/${encodeURIComponent(m.id)}`);
          if (gen === state.generation && noteAck(m.id, r && r.status)) renderAck(m.id);
        } catch {
          // Not sent through Switchboard (e.g. from the phone), or older than the events kept: unknown.
        }
      }),
    );
  }

  // ---- rendering ----

  function renderChats() {
    el.chatsEmpty.hidden = state.chats.length > 0;
    const items = state.chats.map((chat) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chat";
      b.dataset.chatId = chat.id;
      if (chat.id === state.chatId) b.setAttribute("aria-current", "true");
      const name = document.createElement("span");
      name.className = "chat-name";
      name.textContent = chatLabel(chat);
      const last = document.createElement("span");
      last.className = "chat-last";
      last.textContent = chat.lastMessage ? chat.lastMessage.text || `(${chat.lastMessage.type})` : "";
      b.append(name, last);
      if (chat.unreadCount) {
        const unread = document.createElement("span");
        unread.className = "unread";
        unread.textContent = String(chat.unreadCount);
        unread.setAttribute("aria-label", `${chat.unreadCount} unread`);
        name.append(" ", unread);
      }
      b.addEventListener("click", () => chooseChat(chat.id));
      li.append(b);
      return li;
    });
    // Keep keyboard focus on the chat it was on when the list is rebuilt.
    const focused = document.activeElement && el.chats.contains(document.activeElement);
    const focusedId = focused ? document.activeElement.dataset.chatId : null;
    el.chats.replaceChildren(...items);
    if (focusedId) {
      const again = el.chats.querySelector(`button[data-chat-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  function chooseChat(chatId) {
    state.chatId = chatId;
    el.to.value = chatId;
    state.draftKey = null;
    for (const b of el.chats.querySelectorAll("button[data-chat-id]")) {
      if (b.dataset.chatId === chatId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    el.thread.replaceChildren();
    refresh();
  }

  function ackLabel(status) {
    return ACK_TEXT[status] || "";
  }

  function renderThread(chatId, newestFirst) {
    const chat = chatId && state.chats.find((c) => c.id === chatId);
    el.threadTitle.textContent = chatId
      ? `Chat with ${chat ? chatLabel(chat) : phoneText(chatId)}`
      : "Choose a chat";
    el.thread.dataset.chatId = chatId || "";
    const newestBefore = el.thread.lastElementChild && el.thread.lastElementChild.dataset.messageId;
    const items = newestFirst
      .slice()
      .reverse()
      .map((m) => {
        const li = document.createElement("li");
        li.className = "message";
        li.dataset.messageId = m.id;
        li.dataset.direction = m.fromMe ? "out" : "in";
        const meta = document.createElement("p");
        meta.className = "message-meta";
        const who = document.createElement("span");
        who.className = "direction";
        who.textContent = m.fromMe ? "Sent by this account" : `Received from ${phoneText(m.from)}`;
        const when = timeOf(m.timestamp);
        const time = document.createElement("time");
        time.dateTime = when.iso;
        time.textContent = when.text;
        meta.append(who, " · ", time);
        if (m.fromMe) {
          const ack = document.createElement("span");
          ack.className = "ack";
          meta.append(" · ", ack);
        }
        const body = document.createElement("p");
        body.className = "message-text";
        body.textContent = m.text || `(${m.type} message)`;
        li.append(meta, body);
        return li;
      });
    if (!items.length && chatId) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No messages in this chat yet.";
      items.push(li);
    }
    el.thread.replaceChildren(...items);
    for (const m of newestFirst) if (m.fromMe) renderAck(m.id);
    // The newest message is the one to see: scroll to it when it is new.
    const newestNow = el.thread.lastElementChild && el.thread.lastElementChild.dataset.messageId;
    if (newestNow && newestNow !== newestBefore) el.thread.scrollTop = el.thread.scrollHeight;
  }

  function renderAck(messageId) {
    const li = el.thread.querySelector(`li[data-message-id="${CSS.escape(messageId)}"]`);
    const ack = li && li.querySelector(".ack");
    if (!ack) return;
    const status = state.acks.get(messageId) || "";
    ack.dataset.ack = status;
    ack.textContent = status ? ackLabel(status) : "Status unknown";
  }

  // ---- sending ----

  /** A random key (crypto.randomUUID needs a secure context; a dashboard on a LAN over http has none). */
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return `dash-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function send(event) {
    event.preventDefault();
    if (state.sending) return;
    el.error.textContent = "";
    el.result.textContent = "";
    const to = el.to.value.trim();
    const text = el.text.value;
    if (!to) {
      el.error.textContent = "Say who the message is for: a phone number or a chat id.";
      el.to.focus();
      return;
    }
    if (!text.trim()) {
      el.error.textContent = "Write a message first.";
      el.text.focus();
      return;
    }
    const gen = state.generation;
    const accountId = state.accountId;
    if (!state.draftKey) state.draftKey = newKey();
    state.sending = true;
    renderAccountState();
    try {
      const r = await sb().api(
        "POST",
        `${accountPath()}/messages`,
        { to, type: "text", text },
        {
          "Idempotency-Key": state.draftKey,
        },
      );
      state.draftKey = null;
      if (gen !== state.generation || accountId !== state.accountId) return;
      noteAck(r.id, r.status);
      el.result.dataset.messageId = r.id || "";
      el.result.dataset.status = r.status || "";
      el.result.textContent = `${ackLabel(r.status) || r.status}${r.duplicate ? " (already sent before)" : ""}: message ${r.id}.`;
      el.text.value = "";
      const chatId = chatIdOf(to);
      if (chatId !== state.chatId) {
        state.chatId = chatId;
        el.thread.replaceChildren();
      }
      await refresh();
    } catch (err) {
      // A definite answer (4xx) settles this message: a retry would answer the same, so it gets a new
      // key. Without an answer, or on a server error, the key stays for a safe retry.
      if (err && err.status !== undefined && err.status < 500) state.draftKey = null;
      if (gen === state.generation) el.error.textContent = errorText(err);
    } finally {
      state.sending = false;
      if (gen === state.generation) renderAccountState();
    }
  }

  // ---- live events ----

  function onMessage(event) {
    if (!event || event.accountId !== state.accountId) return;
    // The thread is rebuilt on every refresh, so it is no live region: the notice says what arrived.
    if (!event.fromMe && event.from)
      el.notice.textContent = `New message from ${phoneText(chatIdOf(event.from))}.`;
    refresh();
  }

  function onAck(event) {
    if (!event || event.accountId !== state.accountId) return;
    if (noteAck(event.messageId, event.status)) renderAck(event.messageId);
  }

  function onStatus(event) {
    if (!event || event.accountId !== state.accountId) return;
    // accounts.js merged the event first (app.js adds its listener before ours).
    const wasConnected = el.dialog.dataset.connected === "true";
    renderAccountState();
    if (!wasConnected && el.dialog.dataset.connected === "true") refresh();
  }

  // ---- wiring ----

  el.form.addEventListener("submit", send);
  // Another message (or another recipient) is another send: it must not reuse a pending key.
  el.to.addEventListener("input", () => (state.draftKey = null));
  el.text.addEventListener("input", () => (state.draftKey = null));
  el.close.addEventListener("click", close);
  el.dialog.addEventListener("close", () => {
    state.generation++;
    state.accountId = null;
    const target = state.returnFocus && state.returnFocus.isConnected ? state.returnFocus : null;
    state.returnFocus = null;
    if (target) target.focus();
  });

  window.SwitchboardMessages = { open, close };

  // app.js (loaded after this file) shares window.Switchboard; both run before DOMContentLoaded.
  document.addEventListener("DOMContentLoaded", () => {
    sb().on("account.message", onMessage);
    sb().on("account.message_ack", onAck);
    sb().on("account.status", onStatus);
    // After a reconnect the snapshot may be the first news of a change (accounts.js merged it first).
    sb().on("accounts.snapshot", () => state.accountId && onStatus({ accountId: state.accountId }));
    sb().on("account.deleted", (event) => {
      if (event && (event.accountId || event.id) === state.accountId) renderAccountState();
    });
  });
})();
