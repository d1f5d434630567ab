// Switchboard dashboard, the page itself: sign-in with an API key, the REST client (/api/v1) and the
// live Socket.IO connection (client script served at /socket.io/socket.io.min.js). Plain browser
// JavaScript, no build step. The views are scripts loaded before this one: accounts.js and cluster.js
// (used here as window.SwitchboardAccounts and window.SwitchboardCluster) and messages.js (with its
// parts messages-thread.js and messages-send.js); this file shares the client with them as
// window.Switchboard and signs in a saved key last.
"use strict";

(() => {
  const KEY_STORAGE = "switchboard.apiKey";

  const accountsView = window.SwitchboardAccounts;
  const clusterView = window.SwitchboardCluster;

  const $ = (id) => document.getElementById(id);
  const el = {
    connection: $("connection"),
    signOut: $("sign-out"),
    signIn: $("sign-in"),
    keyForm: $("key-form"),
    key: $("api-key"),
    keyError: $("key-error"),
  };

  const state = {
    key: "",
    admin: false,
    socket: null,
    /** Cursor of the newest logged event seen on the socket: where a reconnect resumes. */
    cursor: null,
    /** @type {[string, Function][]} Socket.IO events other scripts listen to (see window.Switchboard). */
    socketListeners: [],
  };

  // ---- REST ----

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.type = body && body.type;
      this.data = body && body.data;
    }
  }

  async function api(method, path, body, headers = {}) {
    const res = await fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${state.key}`,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { message: text };
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  const itemsOf = (data) => (Array.isArray(data) ? data : (data && data.items) || []);

  // ---- page ----

  function setConnection(text, kind) {
    el.connection.textContent = text;
    el.connection.dataset.state = kind;
  }

  /** A row's action button (accounts and nodes); `label` names what it acts on for screen readers. */
  function actionButton(text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "quiet";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  // ---- socket ----

  function connectSocket() {
    if (typeof window.io !== "function") {
      setConnection("Live updates unavailable (socket.io client did not load)", "error");
      return;
    }
    // A reconnect resumes after the last logged event this page saw, so events sent while it was
    // away are replayed after the snapshot rather than lost (the snapshot alone misses a message).
    const socket = window.io({
      auth: (cb) => cb(state.cursor ? { token: state.key, after: state.cursor } : { token: state.key }),
      reconnectionDelayMax: 5000,
    });
    socket.onAny((_name, payload) => {
      const cursor = payload && payload.cursor;
      if (
        typeof cursor === "string" &&
        /^[0-9]{1,15}$/.test(cursor) &&
        Number(cursor) > Number(state.cursor || 0)
      )
        state.cursor = cursor;
    });
    state.socket = socket;
    setConnection("Connecting…", "idle");
    socket.on("connect", () => setConnection("Live", "live"));
    socket.on("disconnect", () => setConnection("Reconnecting…", "error"));
    socket.on("connect_error", (err) => setConnection(`Live updates failed: ${err.message}`, "error"));
    for (const [name, listener] of Object.entries(accountsView.events)) socket.on(name, listener);
    for (const [name, listener] of state.socketListeners) socket.on(name, listener);
  }

  // ---- sign in / out ----

  async function signIn(key) {
    state.key = key;
    el.keyError.textContent = "";
    setConnection("Checking key…", "idle");
    const [nodes, accounts] = await Promise.allSettled([
      api("GET", "/api/v1/cluster/nodes"),
      api("GET", "/api/v1/accounts"),
    ]);
    state.admin = nodes.status === "fulfilled";
    const isWorkspace = accounts.status === "fulfilled";
    if (!state.admin && !isWorkspace) {
      const err = accounts.reason;
      state.key = "";
      sessionStorage.removeItem(KEY_STORAGE);
      setConnection("Signed out", "idle");
      el.keyError.textContent =
        err && (err.status === 401 || err.status === 403)
          ? "This key was not accepted. Check that you pasted the whole key."
          : `The server could not be reached: ${err ? err.message : "unknown error"}`;
      el.key.focus();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    el.signIn.hidden = true;
    el.signOut.hidden = false;
    document.body.dataset.role = state.admin ? "admin" : "workspace";
    if (isWorkspace) {
      accountsView.show(itemsOf(accounts.value));
      connectSocket();
    } else {
      setConnection("Admin", "live");
    }
    if (state.admin) clusterView.show(itemsOf(nodes.value));
    $("main").focus();
  }

  function signOut() {
    if (state.socket) state.socket.disconnect();
    state.socket = null;
    state.cursor = null;
    clusterView.hide();
    accountsView.hide();
    if (window.SwitchboardMessages) window.SwitchboardMessages.close();
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = "";
    state.admin = false;
    el.signOut.hidden = true;
    el.signIn.hidden = false;
    delete document.body.dataset.role;
    setConnection("Signed out", "idle");
    el.key.value = "";
    el.key.focus();
  }

  // ---- wiring ----

  el.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = el.key.value.trim();
    if (!key) {
      el.keyError.textContent = "Paste an API key first.";
      el.key.focus();
      return;
    }
    el.key.value = "";
    signIn(key);
  });
  el.signOut.addEventListener("click", signOut);

  /** What the other dashboard scripts (accounts.js, cluster.js, messages*.js) use: the signed-in REST
   * client, live events, the accounts as this page knows them, and the same words and buttons. */
  window.Switchboard = {
    api,
    itemsOf,
    actionButton,
    /** Listens to a Socket.IO event on this connection and every later one (after a new sign-in). */
    on(name, listener) {
      state.socketListeners.push([name, listener]);
      if (state.socket) state.socket.on(name, listener);
    },
    account: accountsView.account,
    accountLabel: accountsView.accountLabel,
    statusText: accountsView.statusText,
  };

  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) signIn(saved);
  else el.key.focus();
})();
