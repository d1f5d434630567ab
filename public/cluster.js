// Switchboard dashboard, cluster view (admin key): the live nodes with their load, drain and rebalance,
// and which node owns a workspace. Plain browser JavaScript, no build step; uses what app.js shares as
// window.Switchboard (the signed-in REST client) and offers window.SwitchboardCluster to app.js.
"use strict";

(() => {
  const CLUSTER_REFRESH_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const el = {
    cluster: $("cluster"),
    clusterNotice: $("cluster-notice"),
    clusterRefresh: $("cluster-refresh"),
    clusterRebalance: $("cluster-rebalance"),
    nodesBody: $("nodes-body"),
    placementForm: $("placement-form"),
    placementWs: $("placement-ws"),
    placementResult: $("placement-result"),
  };

  const state = {
    clusterTimer: 0,
  };

  const sb = () => window.Switchboard;

  async function loadCluster() {
    try {
      const data = await sb().api("GET", "/api/v1/cluster/nodes");
      renderNodes(sb().itemsOf(data));
      el.cluster.dataset.loaded = "true";
    } catch (err) {
      el.clusterNotice.textContent = `Could not load the cluster: ${err.message}`;
    }
  }

  function renderNodes(nodes) {
    // Workers first, then gateways (nodes without a session service: no lease, no capacity).
    nodes.sort(
      (a, b) =>
        Number(a.worker === false) - Number(b.worker === false) ||
        String(a.nodeId).localeCompare(String(b.nodeId)),
    );
    const rows = nodes.map((n) => {
      const tr = document.createElement("tr");
      tr.dataset.nodeId = n.nodeId;
      const cells = [
        n.nodeId,
        n.host || "",
        n.pid ?? "",
        (n.services || []).join(", "),
        n.worker === false ? "not a worker" : `${n.sessions ?? 0} / ${n.capacity ?? "?"}`,
        n.worker === false ? "" : n.draining ? "yes" : "no",
      ];
      for (const [i, text] of cells.entries()) {
        const td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.textContent = String(text);
        if (i === 2 || i === 4) td.className = "num";
        tr.append(td);
      }
      if (n.worker !== false && n.capacity) {
        const meter = document.createElement("meter");
        meter.className = "meter";
        meter.min = 0;
        meter.max = n.capacity;
        meter.value = n.sessions || 0;
        meter.high = n.capacity * 0.8;
        meter.setAttribute("aria-label", `${n.nodeId} load`);
        tr.children[4].append(meter);
      }
      const actions = document.createElement("td");
      actions.className = "row-actions";
      if (n.worker !== false && !n.draining)
        actions.append(sb().actionButton("Drain", `Drain node ${n.nodeId}`, () => drainNode(n.nodeId)));
      tr.append(actions);
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="7" class="muted">No live workers.</td>';
      rows.push(tr);
    }
    el.nodesBody.replaceChildren(...rows);
    const total = nodes.reduce((sum, n) => sum + (n.sessions || 0), 0);
    el.cluster.dataset.sessions = String(total);
  }

  async function drainNode(nodeId) {
    if (!window.confirm(`Drain ${nodeId}? Its workspaces move to other workers.`)) return;
    el.clusterNotice.textContent = `Draining ${nodeId}…`;
    try {
      const r = await sb().api("POST", `/api/v1/cluster/nodes/${encodeURIComponent(nodeId)}/drain`, {});
      const moved = Array.isArray(r && r.moved) ? r.moved.length : (r && r.moved) || 0;
      el.clusterNotice.textContent = `Drained ${nodeId}: ${moved} workspace(s) handed off.`;
    } catch (err) {
      el.clusterNotice.textContent = `Could not drain ${nodeId}: ${err.message}`;
    }
    loadCluster();
  }

  async function rebalance() {
    el.clusterNotice.textContent = "Rebalancing…";
    try {
      const r = await sb().api("POST", "/api/v1/cluster/rebalance", {});
      const moved = (r && r.moved) || [];
      el.clusterNotice.textContent = moved.length
        ? `Rebalance moved ${moved.length} workspace(s).`
        : "Rebalance: nothing to move.";
    } catch (err) {
      el.clusterNotice.textContent = `Rebalance failed: ${err.message}`;
    }
    loadCluster();
  }

  async function lookUpPlacement(event) {
    event.preventDefault();
    const ws = el.placementWs.value.trim();
    if (!el.placementWs.checkValidity() || !ws) {
      el.placementResult.textContent = "Workspace IDs are 1–64 letters, digits, _ or -.";
      return;
    }
    try {
      const p = await sb().api("GET", `/api/v1/cluster/placement/${encodeURIComponent(ws)}`);
      el.placementResult.dataset.node = (p && p.node) || "";
      el.placementResult.textContent =
        p && p.node
          ? `Workspace ${ws} is on node ${p.node} (epoch ${p.epoch}).`
          : `Workspace ${ws} is not placed yet; its first request places it.`;
    } catch (err) {
      el.placementResult.dataset.node = "";
      el.placementResult.textContent =
        err.status === 404 ? `Workspace ${ws} is not placed yet.` : `Lookup failed: ${err.message}`;
    }
  }

  // ---- show / hide (app.js, on sign-in and sign-out) ----

  /** Shows the nodes the sign-in already fetched, then keeps them fresh while the page is visible. */
  function show(nodes) {
    el.cluster.hidden = false;
    renderNodes(nodes);
    el.cluster.dataset.loaded = "true";
    state.clusterTimer = window.setInterval(() => {
      if (!document.hidden) loadCluster();
    }, CLUSTER_REFRESH_MS);
  }

  function hide() {
    window.clearInterval(state.clusterTimer);
    el.nodesBody.replaceChildren();
    el.cluster.hidden = true;
  }

  // ---- wiring ----

  el.clusterRefresh.addEventListener("click", loadCluster);
  el.clusterRebalance.addEventListener("click", rebalance);
  el.placementForm.addEventListener("submit", lookUpPlacement);

  window.SwitchboardCluster = { show, hide };
})();
