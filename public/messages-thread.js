// Switchboard dashboard, the Messages dialog's thread: the chosen chat's recent messages and, live, the
// receipts of those this account sent. Plain browser JavaScript, no build step; uses what app.js shares
// as window.Switchboard and the dialog's view, window.SwitchboardMessages (messages.js), and offers
// window.SwitchboardMessagesThread to it and to the send form (messages-send.js).
"use strict";

(() => {
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
    notice: $("messages-notice"),
    threadTitle: $("thread-title"),
    thread: $("thread-list"),
  };

  const state = {
    /** @type {Map<string, string>} message id → its latest receipt status */
    acks: new Map(),
    /** Sent messages whose status was asked for once (GET …/messages/:id). */
    asked: new Set(),
    /** Messages whose receipt may have moved on unseen (live events were lost): asked for again. */
    stale: new Set(),
  };

  const sb = () => window.Switchboard;
  const dialog = () => window.SwitchboardMessages;

  // ---- words ----

  function timeOf(seconds) {
    const d = new Date(seconds * 1000);
    if (!seconds || Number.isNaN(d.getTime())) return { iso: "", text: "" };
    const today = d.toDateString() === new Date().toDateString();
    return {
      iso: d.toISOString(),
      text: today ? d.toLocaleTimeString() : `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`,
    };
  }

  function ackLabel(status) {
    return ACK_TEXT[status] || "";
  }

  /** Keeps the most advanced status of a message (receipts can arrive before the list shows it). */
  function noteAck(messageId, status) {
    if (!messageId || !(status in ACK_RANK)) return false;
    const prev = state.acks.get(messageId);
    if (prev && ACK_RANK[prev] >= ACK_RANK[status]) return false;
    state.acks.set(messageId, status);
    return true;
  }

  // ---- loading ----

  async function loadThread(gen) {
    const chatId = dialog().chatId();
    if (!chatId) return renderThread(null, []);
    const a = sb().account(dialog().accountId());
    if (!a || a.status !== "connected") return;
    try {
      const path = `${dialog().accountPath()}/chats/${encodeURIComponent(chatId)}/messages?limit=${MESSAGES_LIMIT}`;
      const data = await sb().api("GET", path);
      if (gen !== dialog().generation() || chatId !== dialog().chatId()) return;
      renderThread(chatId, (data && data.items) || []);
      askStatuses(gen, (data && data.items) || []);
    } catch (err) {
      if (gen !== dialog().generation() || chatId !== dialog().chatId()) return;
      // A chat chosen by sending to it exists only once the send went out: nothing to show yet.
      if (err.status === 404) renderThread(chatId, []);
      else el.notice.textContent = `Could not load the messages: ${err.message}`;
    }
  }

  /** Sent messages this page has no receipt for, or one that may be stale: their last known status
   * (kept with the events). */
  async function askStatuses(gen, items) {
    const unknown = items.filter(
      (m) => m.fromMe && (state.stale.has(m.id) || (!state.acks.has(m.id) && !state.asked.has(m.id))),
    );
    await Promise.all(
      unknown.map(async (m) => {
        state.asked.add(m.id);
        state.stale.delete(m.id);
        try {
          const r = await sb().api("GET", `${dialog().accountPath()}/messages/${encodeURIComponent(m.id)}`);
          if (gen === dialog().generation() && noteAck(m.id, r && r.status)) renderAck(m.id);
        } catch {
          // Not sent through Switchboard (e.g. from the phone), or older than the events kept: unknown.
        }
      }),
    );
  }

  // ---- rendering ----

  function renderThread(chatId, newestFirst) {
    el.threadTitle.textContent = chatId ? `Chat with ${dialog().chatLabelOf(chatId)}` : "Choose a chat";
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
        who.textContent = m.fromMe ? "Sent by this account" : `Received from ${dialog().phoneText(m.from)}`;
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

  // ---- live events ----

  function onAck(event) {
    if (!event || event.accountId !== dialog().accountId()) return;
    if (noteAck(event.messageId, event.status)) renderAck(event.messageId);
  }

  // ---- wiring ----

  window.SwitchboardMessagesThread = {
    /** Loads the chosen chat's messages, unless the view moved on past generation `gen` meanwhile. */
    load: loadThread,
    /** Empties the thread while another chat's messages are on their way. */
    clear: () => el.thread.replaceChildren(),
    noteAck,
    ackLabel,
    /** Live receipts were lost: the next load asks again for those this page already knows. */
    recheckReceipts: () => {
      for (const id of state.acks.keys()) state.stale.add(id);
    },
  };

  // app.js (loaded after this file) shares window.Switchboard; both run before DOMContentLoaded.
  document.addEventListener("DOMContentLoaded", () => {
    sb().on("account.message_ack", onAck);
  });
})();
