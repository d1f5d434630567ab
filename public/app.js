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
    /** The cursor of this connection's snapshot (null without one): where the page stands after it
     * read everything again because a replay failed. */
    snapshotCursor: null,
    /** The page's own reconnect of a socket socket.io-client gave up on: its timer and attempts. */
    retryTimer: 0,
    retries: 0,
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

  /** The page's reconnect delay: doubling from 1 s up to 30 s (socket.io-client's own stays ≤ 5 s). */
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;

  /** The page's wait before its `attempt`-th try again (from 0): doubling, capped. */
  function backoffMs(attempt) {
    return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
  }

  /** A refused handshake no retry can fix: the key is unknown, revoked or may not open a socket. */
  function isKeyRefused(err) {
    const data = (err && err.data) || {};
    return (
      data.type === "UNAUTHORIZED" || data.type === "FORBIDDEN" || data.code === 401 || data.code === 403
    );
  }

  /** socket.io-client does not reconnect after a refused handshake or a server-side disconnect (the
   * socket is then not `active`): the page does, later, unless it signed out or connected meanwhile.
   * A `retryAfter` (seconds) the server sent with a refusal is waited at least. */
  function reconnectLater(socket, why, retryAfterSec) {
    clearTimeout(state.retryTimer);
    const backoff = backoffMs(state.retries);
    // Jitter, so pages refused together (a gateway that was starting) do not come back together.
    const jittered = backoff * (0.5 + Math.random() / 2);
    const delay = Math.max(jittered, typeof retryAfterSec === "number" ? retryAfterSec * 1000 : 0);
    state.retries++;
    setConnection(`${why} Retrying in ${Math.ceil(delay / 1000)} s…`, "error");
    state.retryTimer = setTimeout(() => {
      if (state.socket === socket && !socket.active) socket.connect();
    }, delay);
  }

  /** A key the server no longer takes: the page signs out and says why next to the key field. */
  function signOutBecause(message) {
    signOut();
    el.keyError.textContent = message;
  }

  /** The replay of a reconnect stopped at its cap (`events.resume_more`, or a resume answered `more`):
   * asks for the rest; live events follow once the page has it all. Over the socket calls quota it asks
   * again later (the socket stays out of live events meanwhile); any other refusal loses the rest
   * (`recoverLostReplay`). A disconnect ends the chain: the reconnect resumes from the newest cursor the
   * page saw. */
  function resumeFrom(socket, cursor, attempt = 0) {
    if (state.socket !== socket || !socket.connected || typeof cursor !== "string") return;
    socket.emit("resume", cursor, (err, res) => {
      if (state.socket !== socket) return;
      if (err && err.type === "QUOTA_EXCEEDED") {
        setTimeout(() => resumeFrom(socket, cursor, attempt + 1), backoffMs(attempt));
      } else if (err) recoverLostReplay(socket);
      else if (res && res.more) resumeFrom(socket, res.nextCursor);
    });
  }

  /** The server could not replay what the page missed (`events.resume_error` at connect: a cursor it
   * refused, its socket calls quota, the log unreadable; or a failed `resume`). The socket gets live
   * events again, but those in between are lost: the page reads the accounts and the open Messages
   * dialog again over REST, and says so. A later reconnect resumes from this connection's snapshot,
   * which that reload is at least as new as (the refused cursor would only be refused again). */
  function recoverLostReplay(socket) {
    if (state.socket !== socket) return;
    state.cursor = state.snapshotCursor;
    accountsView.reload();
    if (window.SwitchboardMessages) window.SwitchboardMessages.reload();
  }

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
    socket.onAny((name, payload) => {
      // A snapshot's cursor is where the log stood as it was read: a page that resumes from a cursor of
      // its own has the log that far only once the replay that follows brought it (a drop before
      // then resumes from what the page got, not past what the replay was about to send).
      if (name === "accounts.snapshot" && state.cursor) return;
      const cursor = payload && payload.cursor;
      if (
        typeof cursor === "string" &&
        /^[0-9]{1,15}$/.test(cursor) &&
        Number(cursor) > Number(state.cursor || 0)
      )
        state.cursor = cursor;
    });
    state.socket = socket;
    state.retries = 0;
    setConnection("Connecting…", "idle");
    socket.on("connect", () => {
      clearTimeout(state.retryTimer);
      state.retries = 0;
      setConnection("Live", "live");
    });
    socket.on("disconnect", (reason) => {
      if (state.socket !== socket) return;
      // "io client disconnect" is this page signing out; a dropped transport reconnects by itself.
      if (socket.active) setConnection("Reconnecting…", "error");
      else if (reason === "io server disconnect") reconnectLater(socket, "The server closed the connection.");
    });
    socket.on("connect_error", (err) => {
      if (state.socket !== socket) return;
      if (socket.active) setConnection(`Reconnecting… (${err.message})`, "error");
      else if (isKeyRefused(err))
        signOutBecause(`This key is no longer accepted (${err.message}). Sign in with a valid key.`);
      else reconnectLater(socket, `Live updates failed: ${err.message}.`, err.data && err.data.retryAfter);
    });
    socket.on("auth.revoked", (payload) => {
      if (state.socket !== socket) return;
      signOutBecause(
        `${(payload && payload.message) || "This API key was revoked"}. Sign in with another key.`,
      );
    });
    // Each connection starts with one of these two, before any replay.
    socket.on("accounts.snapshot", (snapshot) => {
      if (state.socket !== socket) return;
      const cursor = snapshot && snapshot.cursor;
      state.snapshotCursor = typeof cursor === "string" && /^[0-9]{1,15}$/.test(cursor) ? cursor : null;
    });
    socket.on("accounts.snapshot_error", () => {
      if (state.socket === socket) state.snapshotCursor = null;
    });
    socket.on("events.resume_more", (more) => resumeFrom(socket, more && more.nextCursor));
    socket.on("events.resume_error", () => recoverLostReplay(socket));
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
    clearTimeout(state.retryTimer);
    if (state.socket) state.socket.disconnect();
    state.socket = null;
    state.cursor = null;
    state.snapshotCursor = null;
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
    /** The newest logged event this page has: where its next reconnect resumes. */
    cursor: () => state.cursor,
    account: accountsView.account,
    accountLabel: accountsView.accountLabel,
    statusText: accountsView.statusText,
  };

  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) signIn(saved);
  else el.key.focus();
})();
