// Switchboard dashboard, messages of one account: the Messages dialog, the account's state in it, its
// recent chats, and the live events that reload them. Plain browser JavaScript, no build step; uses what
// app.js shares as window.Switchboard (the signed-in REST client and the Socket.IO events) and the
// dialog's other two parts: the chosen chat's messages (messages-thread.js,
// window.SwitchboardMessagesThread) and the send form (messages-send.js, window.SwitchboardMessagesSend).
// Offers window.SwitchboardMessages: open(id) and close() to accounts.js and app.js, the shared view to
// the two parts.
"use strict";

(() => {
  const CHATS_LIMIT = 20;

  const $ = (id) => document.getElementById(id);
  const el = {
    dialog: $("messages-dialog"),
    title: $("messages-title"),
    close: $("messages-close"),
    notice: $("messages-notice"),
    chats: $("chats-list"),
    chatsEmpty: $("chats-empty"),
  };

  const state = {
    accountId: null,
    /** Bumped on every open and close: answers for an earlier view are dropped. */
    generation: 0,
    chats: [],
    chatId: null,
    refreshing: null,
    refreshAgain: false,
    returnFocus: null,
  };

  const sb = () => window.Switchboard;
  const thread = () => window.SwitchboardMessagesThread;
  const form = () => window.SwitchboardMessagesSend;
  const accountPath = () => `/api/v1/accounts/${encodeURIComponent(state.accountId)}`;

  // ---- words ----

  /** The chat a `to` lands in, as WhatsApp writes it (src/engines/directory.ts chatIdOf). */
  const chatIdOf = (to) => (to.includes("@") ? to : `${to.replace(/[^0-9]/g, "")}@c.us`);
  const phoneText = (chatId) => (/@c\.us$/.test(chatId) ? `+${chatId.split("@")[0]}` : chatId);
  function chatLabel(chat) {
    const number = phoneText(chat.id);
    return chat.name && chat.name !== chat.id && chat.name !== number ? `${chat.name} (${number})` : number;
  }

  /** A chat in words: its name when the list knows it (a chat just sent to may not be listed yet). */
  function chatLabelOf(chatId) {
    const chat = state.chats.find((c) => c.id === chatId);
    return chat ? chatLabel(chat) : phoneText(chatId);
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
      form().clearDraft();
      el.chats.replaceChildren();
      thread().clear();
    }
    state.accountId = accountId;
    state.generation++;
    el.dialog.dataset.accountId = accountId;
    el.title.textContent = `Messages of ${a ? sb().accountLabel(a) : accountId}`;
    form().clearOutcome();
    el.notice.textContent = "";
    renderAccountState();
    if (!el.dialog.open) el.dialog.showModal();
    form().focus();
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
    form().allowSending(connected);
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
        await thread().load(gen);
      } while (state.refreshAgain && state.accountId);
    })().finally(() => {
      state.refreshing = null;
    });
    return state.refreshing;
  }

  /** Live events were lost (a replay the server refused): reads the chats, the chosen chat's messages
   * and their receipts again, then says so unless the reload had something else to say. */
  async function reload() {
    if (!state.accountId) return;
    const gen = state.generation;
    thread().recheckReceipts();
    if (el.notice.dataset.kind !== "state") el.notice.textContent = "";
    await refresh();
    if (gen === state.generation && !el.notice.textContent)
      el.notice.textContent =
        "Live updates were missed and could not be caught up; the messages were reloaded.";
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

  // ---- chats ----

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
    form().address(chatId);
    for (const b of el.chats.querySelectorAll("button[data-chat-id]")) {
      if (b.dataset.chatId === chatId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    thread().clear();
    refresh();
  }

  /** The chat a message was just sent to becomes the chosen one; the next refresh lists and loads it. */
  function showChat(chatId) {
    if (chatId === state.chatId) return;
    state.chatId = chatId;
    thread().clear();
  }

  // ---- live events ----

  function onMessage(event) {
    if (!event || event.accountId !== state.accountId) return;
    // The thread is rebuilt on every refresh, so it is no live region: the notice says what arrived.
    if (!event.fromMe && event.from)
      el.notice.textContent = `New message from ${phoneText(chatIdOf(event.from))}.`;
    refresh();
  }

  function onStatus(event) {
    if (!event || event.accountId !== state.accountId) return;
    // accounts.js merged the event first (app.js adds its listener before ours).
    const wasConnected = el.dialog.dataset.connected === "true";
    renderAccountState();
    if (!wasConnected && el.dialog.dataset.connected === "true") refresh();
  }

  // ---- wiring ----

  el.close.addEventListener("click", close);
  el.dialog.addEventListener("close", () => {
    // The browser sends "close" a moment later: the dialog may have been opened again meanwhile.
    if (el.dialog.open) return;
    state.generation++;
    state.accountId = null;
    const target = state.returnFocus && state.returnFocus.isConnected ? state.returnFocus : null;
    state.returnFocus = null;
    if (target) target.focus();
  });

  window.SwitchboardMessages = {
    open,
    close,
    /** The view the thread and the send form share: answers for another generation are dropped. */
    accountId: () => state.accountId,
    generation: () => state.generation,
    chatId: () => state.chatId,
    accountPath,
    showChat,
    refresh,
    reload,
    renderAccountState,
    chatIdOf,
    phoneText,
    chatLabelOf,
  };

  // app.js (loaded after this file) shares window.Switchboard; both run before DOMContentLoaded.
  document.addEventListener("DOMContentLoaded", () => {
    sb().on("account.message", onMessage);
    sb().on("account.status", onStatus);
    // After a reconnect the snapshot may be the first news of a change (accounts.js merged it first).
    sb().on("accounts.snapshot", () => state.accountId && onStatus({ accountId: state.accountId }));
    sb().on("account.deleted", (event) => {
      if (event && (event.accountId || event.id) === state.accountId) renderAccountState();
    });
  });
})();
