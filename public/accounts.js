// Switchboard dashboard, accounts of one workspace: the live table of accounts (create, restart, remove).
// Plain browser JavaScript, no build step; uses what app.js shares as window.Switchboard (the signed-in
// REST client) and the QR dialog (qr-dialog.js, window.SwitchboardQrDialog), and offers
// window.SwitchboardAccounts to both: show/hide, the Socket.IO events it follows, the accounts, their
// QR codes and their words.
"use strict";

(() => {
  /** Failure reasons (src/lifecycle/states.ts) in words a person can act on. */
  const REASONS = {
    qr_timeout: "The QR code was not scanned in time",
    whatsapp_unreachable: "WhatsApp Web could not be reached from the server",
    browser_launch_failed: "The browser for this session could not be started on the server",
    browser_crashed: "The browser running this session stopped unexpectedly",
    startup_timeout: "The session took too long to start",
    auth_failure: "WhatsApp did not accept the saved login; connect the account again",
    node_lost: "The server running this session went away; it is moving to another server",
    capacity_exhausted: "No server has room for another session right now",
    engine_error: "The WhatsApp session reported an error",
  };

  const STATUS_TEXT = {
    initializing: "Starting",
    qr_scanning: "Waiting for QR scan",
    authenticated: "Linked, signing in",
    connected: "Connected",
    disconnected: "Reconnecting",
    failed: "Failed",
    logged_out: "Logged out",
    stopped: "Stopped",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    workspace: $("workspace"),
    workspaceName: $("workspace-name"),
    createForm: $("create-form"),
    accountName: $("account-name"),
    connectButton: $("connect-account"),
    accountsNotice: $("accounts-notice"),
    accountsBody: $("accounts-body"),
    accountsEmpty: $("accounts-empty"),
  };

  const state = {
    /** @type {Map<string, any>} account id → account view (+ statusAt) */
    accounts: new Map(),
    /** @type {Map<string, any>} account id → current QR {qr, dataUrl, seq, expiresAt} */
    qrs: new Map(),
    /** @type {Map<string, HTMLTableRowElement>} */
    rows: new Map(),
    /** While a reload's answer is on its way, the accounts news touched meanwhile (id → "live" or
     * "removed"): newer than the answer, so they win over it. Null otherwise. */
    touched: null,
  };

  const sb = () => window.Switchboard;
  const dialog = () => window.SwitchboardQrDialog;

  // ---- words ----

  /** The reason in words; the engine's own message is a detail shown apart (it is often technical). */
  function reasonText(reason, message) {
    if (REASONS[reason]) return REASONS[reason];
    if (reason) return `Failed: ${String(reason).replace(/_/g, " ")}`;
    return message || "";
  }

  const statusText = (s) => STATUS_TEXT[s] || s || "Unknown";
  const accountLabel = (a) => a.name || a.phoneNumber || a.id;

  function timeText(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
  }

  // ---- account state ----

  const stampOf = (a) => Date.parse(a.at || a.updatedAt || "") || 0;

  /** Merges an account view or status event, never letting an older status overwrite a newer one. */
  function mergeAccount(patch) {
    const id = patch.id || patch.accountId;
    if (!id) return null;
    const prev = state.accounts.get(id);
    const stamp = stampOf(patch);
    const next = { ...(prev || {}), id };
    for (const [k, v] of Object.entries(patch)) {
      if (k === "accountId" || k === "at" || k === "qr" || v === undefined) continue;
      next[k] = v;
    }
    if (prev && prev.statusAt > stamp && patch.status !== undefined) {
      // Older news (e.g. the POST response arriving after the first status events): keep the newer status.
      for (const k of ["status", "reason", "message", "node"]) next[k] = prev[k];
    } else if (patch.status !== undefined) {
      next.statusAt = stamp;
      if (patch.status !== "failed" && patch.status !== "disconnected" && !("reason" in patch)) {
        delete next.reason;
        delete next.message;
      }
      if (patch.at) next.updatedAt = patch.at;
    }
    state.accounts.set(id, next);
    if (state.touched) state.touched.set(id, "live");
    // A QR stays while the session may still show it; any later state makes it useless.
    if (next.status !== "qr_scanning" && next.status !== "initializing") state.qrs.delete(id);
    if (next.workspaceId && !el.workspaceName.textContent) {
      el.workspaceName.textContent = `· workspace ${next.workspaceId}`;
    }
    renderAccount(id);
    dialog().refresh(id);
    return next;
  }

  function setQr(accountId, qr) {
    if (!qr || !qr.dataUrl) return;
    const account = state.accounts.get(accountId);
    // A late QR of a session that already moved on (connected, failed…) is of no use.
    if (account && account.status !== "qr_scanning" && account.status !== "initializing") return;
    state.qrs.set(accountId, qr);
    if (account) account.status = "qr_scanning";
    renderAccount(accountId);
    dialog().refresh(accountId);
  }

  function removeAccount(id) {
    if (state.touched) state.touched.set(id, "removed");
    state.accounts.delete(id);
    state.qrs.delete(id);
    const row = state.rows.get(id);
    if (row) row.remove();
    state.rows.delete(id);
    updateEmpty();
    dialog().removed(id);
  }

  // ---- accounts table ----

  function updateEmpty() {
    el.accountsEmpty.hidden = state.accounts.size > 0;
  }

  function renderAccount(id) {
    const a = state.accounts.get(id);
    if (!a) return;
    let row = state.rows.get(id);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.accountId = id;
      row.innerHTML =
        '<td class="name"></td><td class="state"><span class="status"></span><span class="reason"></span></td>' +
        '<td class="phone"></td><td class="node"></td><td class="updated"></td><td class="row-actions"></td>';
      state.rows.set(id, row);
      insertRowInOrder(row, a);
    }
    const name = row.querySelector(".name");
    name.textContent = a.name || "(unnamed)";
    const small = document.createElement("span");
    small.className = "account-id";
    small.textContent = id;
    name.append(small);
    const badge = row.querySelector(".status");
    badge.textContent = statusText(a.status);
    badge.dataset.status = a.status || "";
    row.dataset.status = a.status || "";
    const reason = row.querySelector(".reason");
    reason.textContent =
      a.status === "failed" || a.status === "disconnected" ? reasonText(a.reason, a.message) : "";
    reason.title = a.message || "";
    row.querySelector(".phone").textContent = a.phoneNumber || "";
    row.querySelector(".node").textContent = a.node || "";
    row.querySelector(".updated").textContent = timeText(a.updatedAt);

    // Rebuild the action buttons only when their set changes, so keyboard focus is not lost.
    const actions = [];
    if (a.status === "connected" && window.SwitchboardMessages) actions.push("messages");
    if (a.status === "qr_scanning" || a.status === "initializing") actions.push("qr");
    if (a.status === "failed" || a.status === "logged_out" || a.status === "stopped") actions.push("restart");
    actions.push("remove");
    const cell = row.querySelector(".row-actions");
    const label = accountLabel(a);
    const signature = `${actions.join(",")}|${label}`;
    if (cell.dataset.actions !== signature) {
      cell.dataset.actions = signature;
      cell.replaceChildren();
      if (actions.includes("messages"))
        cell.append(
          sb().actionButton("Messages", `Messages of ${label}`, () => window.SwitchboardMessages.open(id)),
        );
      if (actions.includes("qr"))
        cell.append(sb().actionButton("Show QR", `Show QR code of ${label}`, () => dialog().open(id)));
      if (actions.includes("restart"))
        cell.append(sb().actionButton("Restart", `Restart ${label}`, () => restartAccount(id, true)));
      cell.append(sb().actionButton("Remove", `Remove ${label}`, () => deleteAccount(id)));
    }
    updateEmpty();
  }

  function insertRowInOrder(row, account) {
    const created = account.createdAt || "";
    for (const other of el.accountsBody.children) {
      const o = state.accounts.get(other.dataset.accountId);
      if (o && (o.createdAt || "") > created) {
        el.accountsBody.insertBefore(row, other);
        return;
      }
    }
    el.accountsBody.append(row);
  }

  /** Makes the accounts those of `items`; `touched` (see state.touched) names accounts whose news is
   * newer than `items`: one removed stays removed, one added stays. */
  function replaceAccounts(items, touched = new Map()) {
    const seen = new Set();
    for (const item of items) {
      const id = item.id || item.accountId;
      seen.add(id);
      if (touched.get(id) === "removed") continue;
      const prev = state.accounts.get(id);
      // A snapshot is the truth at connect time unless we already hold newer news.
      if (prev && prev.statusAt > stampOf(item)) mergeAccount({ ...item, status: undefined });
      else mergeAccount(item);
      if (item.qr) setQr(id, item.qr);
    }
    for (const id of [...state.accounts.keys()])
      if (!seen.has(id) && touched.get(id) !== "live") removeAccount(id);
    updateEmpty();
  }

  /** Reads the accounts again from REST after live events were lost (a replay the server refused) and
   * says so; news arriving meanwhile is newer than the answer and kept. */
  async function reload() {
    const touched = new Map();
    state.touched = touched;
    try {
      const items = sb().itemsOf(await sb().api("GET", "/api/v1/accounts"));
      // Signed out, or a later reload took over.
      if (state.touched !== touched) return;
      state.touched = null;
      replaceAccounts(items, touched);
      el.accountsNotice.textContent =
        "Live updates were missed and could not be caught up; the accounts were reloaded.";
    } catch (err) {
      if (state.touched === touched)
        el.accountsNotice.textContent = `Live updates were missed and the accounts could not be reloaded: ${err.message}`;
    } finally {
      if (state.touched === touched) state.touched = null;
    }
  }

  async function createAccount(event) {
    event.preventDefault();
    el.connectButton.disabled = true;
    el.accountsNotice.textContent = "";
    try {
      const name = el.accountName.value.trim();
      const account = await sb().api("POST", "/api/v1/accounts", name ? { name } : {});
      mergeAccount(account);
      el.accountName.value = "";
      dialog().open(account.id);
    } catch (err) {
      el.accountsNotice.textContent = `Could not create the account: ${err.message}`;
    } finally {
      el.connectButton.disabled = false;
    }
  }

  async function restartAccount(id, openAfter) {
    try {
      state.qrs.delete(id);
      const account = await sb().api("POST", `/api/v1/accounts/${encodeURIComponent(id)}/restart`, {});
      if (account && account.id) mergeAccount(account);
      if (openAfter) dialog().open(id);
      else dialog().refresh(id);
    } catch (err) {
      el.accountsNotice.textContent = `Could not restart ${id}: ${err.message}`;
    }
  }

  async function deleteAccount(id) {
    const a = state.accounts.get(id);
    if (!window.confirm(`Remove ${a ? accountLabel(a) : id}? The device will be unlinked.`)) return;
    try {
      await sb().api("DELETE", `/api/v1/accounts/${encodeURIComponent(id)}`);
      removeAccount(id);
      el.accountsNotice.textContent = `Removed ${a ? accountLabel(a) : id}.`;
    } catch (err) {
      el.accountsNotice.textContent = `Could not remove ${id}: ${err.message}`;
    }
  }

  /** Says a status change that matters out loud (the table alone is silent for screen readers); the
   * dialog speaks for the account it shows. */
  function announce(a) {
    const name = accountLabel(a);
    if (a.status === "connected")
      el.accountsNotice.textContent = `${name} is connected${a.phoneNumber ? ` as ${a.phoneNumber}` : ""}.`;
    else if (a.status === "failed")
      el.accountsNotice.textContent = `${name} failed: ${reasonText(a.reason, a.message) || "no reason given"}.`;
    else if (a.status === "logged_out")
      el.accountsNotice.textContent = `${name} was logged out by the phone.`;
    else if (a.status === "disconnected")
      el.accountsNotice.textContent = `${name} lost its connection; reconnecting.`;
  }

  // ---- live events ----

  /** The Socket.IO events this view follows. app.js adds them to every connection before the other
   * scripts' listeners, so those (messages.js) see an account already merged. */
  const events = {
    "accounts.snapshot": (payload) => replaceAccounts(sb().itemsOf(payload)),
    "account.created": (payload) => mergeAccount((payload && payload.account) || payload),
    "accounts.snapshot_error": (err) => {
      el.accountsNotice.textContent = `Could not load the accounts: ${(err && err.message) || "unknown error"}`;
    },
    "account.status": (event) => {
      const before = state.accounts.get(event.accountId);
      const inDialog = dialog().shows(event.accountId);
      const account = mergeAccount(event);
      if (account && before && before.status !== account.status && !inDialog) announce(account);
    },
    "account.qr": (event) => setQr(event.accountId, event),
    "account.deleted": (event) => removeAccount(event.accountId || event.id),
  };

  // ---- show / hide (app.js, on sign-in and sign-out) ----

  /** Shows the accounts the sign-in already fetched; the socket's snapshot and events keep them live. */
  function show(items) {
    el.workspace.hidden = false;
    replaceAccounts(items);
  }

  function hide() {
    state.touched = null;
    dialog().close();
    state.accounts.clear();
    state.qrs.clear();
    state.rows.clear();
    el.accountsBody.replaceChildren();
    el.workspaceName.textContent = "";
    el.workspace.hidden = true;
  }

  // ---- wiring ----

  el.createForm.addEventListener("submit", createAccount);

  window.SwitchboardAccounts = {
    show,
    hide,
    reload,
    events,
    account: (id) => state.accounts.get(id),
    qrOf: (id) => state.qrs.get(id),
    setQr,
    restart: restartAccount,
    accountLabel,
    statusText,
    reasonText,
  };
})();
