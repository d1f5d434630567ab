// 1,000 malformed or hostile requests against a real gateway (+ 2 workers): bad JSON, wrong types,
// huge bodies and headers, unknown routes, path tricks, prototype pollution, missing and forged keys,
// raw garbage on the socket. Every answer is a 4xx JSON error with a `type` (zero 5xx), nothing
// leaks across workspaces, and the gateway still serves afterwards.
import { strict as assert } from "node:assert";
import { connect } from "node:net";
import {
  GatewayCluster,
  LONG_QR,
  waitForStatus,
  type GatewayNode,
  type HttpResult,
  type RequestOptions,
} from "./helpers.ts";
import { waitFor } from "../../support/wait.ts";

/** A deterministic PRNG (mulberry32), so a failure names a reproducible request. */
function prng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Probe {
  kind: string;
  method: string;
  path: string;
  opts?: RequestOptions;
  /** Sent as raw bytes on a fresh socket instead of through the HTTP client. */
  raw?: string;
}

/** Raw bytes on a socket; the answer parsed just enough (status line, content type, body). */
function rawSocket(port: number, payload: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error("raw socket timed out")));
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [head, ...rest] = text.split("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const type = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? "";
      const body = Buffer.from(rest.join("\r\n\r\n"), "latin1");
      let json: unknown;
      try {
        json = JSON.parse(body.toString());
      } catch {
        json = undefined;
      }
      resolve({ status, headers: { "content-type": type }, body, json });
    });
    socket.end(payload);
  });
}

describe("api: 1,000 malformed and hostile requests", function () {
  this.timeout(180000);
  let gc: GatewayCluster;
  let gw: GatewayNode;
  let key: string;
  let attackerKey: string;
  let revokedKey: string;
  let ownAccount: string;
  let foreignAccount: string;

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 1000000 });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.addWorker("w2");
    await gc.start();
    gw = gc.gw;
    key = (await gc.createKey("victim-1")).key;
    attackerKey = (await gc.createKey("attacker-2")).key;
    const revoked = await gc.createKey("attacker-2");
    revokedKey = revoked.key;
    await gw.call("DELETE", `/api/v1/workspaces/attacker-2/keys/${revoked.keyId}`, { key: gc.adminKey });
    ownAccount = (await gw.call("POST", "/api/v1/accounts", { key: attackerKey, body: { name: "mine" } }))
      .json.id;
    foreignAccount = (await gw.call("POST", "/api/v1/accounts", { key, body: { name: "victim" } })).json.id;
    await waitForStatus(gw, key, foreignAccount, "qr_scanning");
  });
  after(() => gc?.stop());

  function probes(): Probe[] {
    const rnd = prng(20261128);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const randomString = (n: number) =>
      Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rnd() * 95))).join("");
    const junkValues: unknown[] = [
      null,
      0,
      -1,
      1e308,
      true,
      [],
      {},
      [1, 2],
      { $gt: "" },
      { $ne: null },
      "x".repeat(5000),
      "\u0000",
      "☃️💥",
      "<script>alert(1)</script>",
      "'; db.dropDatabase(); //",
    ];
    const accountPaths = [
      `/api/v1/accounts/${ownAccount}`,
      `/api/v1/accounts/${ownAccount}/qr`,
      `/api/v1/accounts/${ownAccount}/pairing-code`,
      `/api/v1/accounts/${ownAccount}/messages`,
      `/api/v1/accounts/${ownAccount}/simulate/scan`,
      `/api/v1/accounts/${ownAccount}/simulate/message`,
      "/api/v1/accounts",
    ];
    const pathTricks = [
      "/api/v1/accounts/..%2f..",
      "/api/v1/accounts/..%2F..%2F..%2Fetc%2Fpasswd",
      "/api/v1/accounts/%2e%2e/qr",
      "/api/v1/accounts/%2e%2e%2f%2e%2e/keys",
      "/api/v1/../../etc/passwd",
      "/api/v1/accounts/../workspaces/victim-1/keys",
      "/api/v1/accounts/..;/cluster/nodes",
      "//api//v1//accounts",
      "/api/v1/accounts/%00",
      "/api/v1/accounts/%E0%A4%A",
      "/api/v1/accounts/%",
      "/api/v1/accounts/a%2Fb/qr",
      `/api/v1/accounts/${"a".repeat(2000)}`,
      "/api/v1/accounts/%C0%AE%C0%AE",
      `/api/v1/accounts/${foreignAccount}%00`,
      `/api/v1/accounts/${foreignAccount}/..%2f..%2f${foreignAccount}`,
      "/api/v1/accounts?workspaceId=victim-1",
      "/api/v1/accounts?workspaceId[]=victim-1",
      "/api/v1/accounts?workspaceId[$ne]=x",
      "/api/v1/accounts?__proto__[admin]=1&constructor[prototype][admin]=1",
      `/api/v1/accounts/${ownAccount}/qr?format=png&format=json`,
      `/api/v1/accounts/${ownAccount}/qr?format[]=png`,
      `/api/v1/accounts/${ownAccount}/qr?format=svg`,
      "/api/v1/workspaces/victim-1/keys",
      "/api/v1/cluster/nodes",
      "/api/v1/cluster/nodes/w1/drain",
      "/api/v1/$node/list",
      "/api/v1/~node/list",
      "/api/v1/api/rest",
      "/api/v1/accounts.list",
      "/api/v1/list-aliases",
      "/api/list-aliases",
      "/list-aliases",
      "/api/v1/accounts/x/simulate/explode",
      `/api/v1/accounts/${foreignAccount}`,
      `/api/v1/accounts/${foreignAccount}/qr`,
    ];
    const forgedKeys: (string | undefined)[] = [
      undefined,
      "",
      "x",
      "null",
      `sbk_${"0".repeat(16)}_${"0".repeat(64)}`,
      key.slice(0, -1) + (key.endsWith("a") ? "b" : "a"),
      key.toUpperCase(),
      ` ${key}x`,
      revokedKey,
      gc.adminKey.slice(0, -1),
      gc.adminKey + "x",
      "k".repeat(600),
      "\u00e9\u00ff".repeat(10),
      "' OR 1=1 --",
    ];

    const out: Probe[] = [];
    const add = (p: Probe) => out.push(p);
    // 1. Bad JSON (valid key).
    for (let i = 0; i < 150; i++) {
      const good = JSON.stringify({
        name: randomString(8),
        phoneNumber: "4915100000001",
        to: "123456",
        text: "x",
      });
      const bodies = [
        good.slice(0, Math.floor(rnd() * good.length)),
        `{"name": ${randomString(5)}}`,
        "{'name': 'single quotes'}",
        "[1,2,3",
        "\u0000\u0001\u0002",
        "NaN",
        "undefined",
        '{"a":1}{"b":2}',
        '"just a string"',
        "123",
        "true",
        randomString(40),
      ];
      add({
        kind: "bad-json",
        method: "POST",
        path: pick(accountPaths),
        opts: { key: attackerKey, body: pick(bodies) },
      });
    }
    // 2. Wrong types and hostile values (valid JSON).
    for (let i = 0; i < 200; i++) {
      const field = pick([
        "name",
        "engine",
        "phoneNumber",
        "to",
        "text",
        "from",
        "workspaceId",
        "id",
        "format",
      ]);
      const body = rnd() < 0.2 ? pick(junkValues) : { [field]: pick(junkValues) };
      add({ kind: "wrong-type", method: "POST", path: pick(accountPaths), opts: { key: attackerKey, body } });
    }
    // 3. Prototype pollution and extra fields.
    for (let i = 0; i < 30; i++) {
      add({
        kind: "pollution",
        method: "POST",
        path: "/api/v1/accounts",
        opts: {
          key: attackerKey,
          body: pick([
            '{"__proto__": {"admin": true, "workspaceId": "victim-1"}}',
            '{"constructor": {"prototype": {"admin": true}}}',
            '{"name": "x", "$$strict": false, "workspaceId": "victim-1", "$statusCode": 500}',
            '{"name": {"toString": 1}}',
          ]),
        },
      });
    }
    // 4. Huge bodies (bounded so the spec stays fast) and wrong content types.
    for (let i = 0; i < 30; i++) {
      const size = pick([65 * 1024, 100 * 1024, 512 * 1024, 2 * 1024 * 1024]);
      add({
        kind: "huge-body",
        method: "POST",
        path: pick(accountPaths),
        opts: { key: attackerKey, body: JSON.stringify({ name: "x".repeat(size) }) },
      });
    }
    for (let i = 0; i < 30; i++) {
      add({
        kind: "content-type",
        method: "POST",
        path: "/api/v1/accounts",
        opts: {
          key: attackerKey,
          body: pick(['{"name":"x"}', "name=x", "<xml/>"]),
          headers: {
            "content-type": pick([
              "text/plain",
              "application/x-www-form-urlencoded",
              "application/xml",
              "application/json; charset=utf-16",
              "application/json; charset=klingon",
              "multipart/form-data; boundary=x",
            ]),
          },
        },
      });
    }
    // 5. Unknown routes and methods.
    for (let i = 0; i < 150; i++) {
      const method = pick(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]);
      const path = pick([
        `/api/v1/${encodeURIComponent(randomString(6))}`,
        `/api/v2/accounts`,
        `/api/v1/accounts/${ownAccount}/${encodeURIComponent(randomString(4))}`,
        `/${encodeURIComponent(randomString(10))}`,
        "/api",
        "/api/v1",
        "/api/v1/",
        "/metrics/x",
        "/health",
        "/api/v1/accounts",
      ]);
      add({ kind: "unknown-route", method, path, opts: { key: attackerKey } });
    }
    // 6. Path tricks.
    for (let i = 0; i < 200; i++) {
      add({
        kind: "path-trick",
        method: pick(["GET", "POST", "DELETE"]),
        path: pick(pathTricks),
        opts: { key: attackerKey },
      });
    }
    // 7. Missing and forged keys, in every header form.
    for (let i = 0; i < 180; i++) {
      const forged = pick(forgedKeys);
      const headers: Record<string, string> = {};
      const form = pick(["bearer", "x-api-key", "basic", "lowercase", "double"]);
      if (forged !== undefined) {
        if (form === "bearer") headers.authorization = `Bearer ${forged}`;
        else if (form === "x-api-key") headers["x-api-key"] = forged;
        else if (form === "basic")
          headers.authorization = `Basic ${Buffer.from(`u:${forged}`).toString("base64")}`;
        else if (form === "lowercase") headers.authorization = `bearer${forged}`;
        else headers.authorization = `Bearer ${forged} Bearer ${forged}`;
      }
      const path = pick([...accountPaths, "/api/v1/workspaces/victim-1/keys", "/api/v1/cluster/nodes"]);
      const method = pick(["GET", "POST", "DELETE"]);
      add({ kind: "forged-key", method, path, opts: { headers, body: method === "POST" ? {} : undefined } });
    }
    // 8. Raw garbage on the socket (what the HTTP client cannot send).
    const rawRequests = [
      "GARBAGE\r\n\r\n",
      "GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "GET /api/v1/accounts HTTP/9.9\r\nHost: x\r\n\r\n",
      `GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20000)}\r\n\r\n`,
      "GET /api/v1/acc ounts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
      `GET /api/v1/accounts/\u00ff\u00fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      "\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003",
    ];
    while (out.length < 1000) {
      add({ kind: "raw", method: "RAW", path: "", raw: pick(rawRequests) });
    }
    return out;
  }

  it("answers every one with a 4xx JSON error carrying a type (zero 5xx), and still serves", async () => {
    const list = probes();
    assert.equal(list.length, 1000);
    const failures: string[] = [];
    const byKind = new Map<string, Map<number, number>>();
    const concurrency = 16;
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < list.length) {
          const i = next++;
          const p = list[i];
          let res: HttpResult;
          try {
            res =
              p.raw !== undefined ? await rawSocket(gw.port, p.raw) : await gw.call(p.method, p.path, p.opts);
          } catch (err) {
            failures.push(
              `#${i} ${p.kind} ${p.method} ${p.path.slice(0, 80)}: transport error ${(err as Error).message}`,
            );
            continue;
          }
          const counts = byKind.get(p.kind) ?? new Map<number, number>();
          counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
          byKind.set(p.kind, counts);
          const what = `#${i} ${p.kind} ${p.method} ${p.path.slice(0, 80)} → ${res.status} ${res.body.toString().slice(0, 160)}`;
          if (res.status >= 500 || res.status === 0) failures.push(`5xx/none: ${what}`);
          // 2xx happen (e.g. a valid OPTIONS or a polluted-but-valid create in the key's own workspace);
          // 204 answers a CORS preflight; HEAD answers carry no body.
          if (res.status >= 400 && p.method !== "HEAD") {
            if (!String(res.headers["content-type"]).includes("application/json"))
              failures.push(`not JSON: ${what}`);
            else if (typeof res.json?.type !== "string" || !res.json.type) failures.push(`no type: ${what}`);
            else if (res.json.code !== res.status) failures.push(`code mismatch: ${what}`);
          }
          if (res.status < 300 && res.body.includes(foreignAccount)) failures.push(`leak: ${what}`);
        }
      }),
    );
    const summary = Object.fromEntries([...byKind].map(([k, m]) => [k, Object.fromEntries(m)]));
    console.log(`      statuses by kind: ${JSON.stringify(summary)}`);
    assert.deepEqual(
      failures.slice(0, 20),
      [],
      `${failures.length} failures; statuses by kind: ${JSON.stringify(summary)}`,
    );

    // Still serving, and nothing happened to the other workspace's account.
    assert.equal((await gw.call("GET", "/health/live")).status, 200);
    const mine = await gw.call("GET", "/api/v1/accounts", { key: attackerKey });
    assert.equal(mine.status, 200);
    assert.ok(mine.json.items.every((a: { workspaceId: string }) => a.workspaceId === "attacker-2"));
    const victim = await gw.call("GET", `/api/v1/accounts/${foreignAccount}`, { key });
    assert.equal(victim.status, 200);
    assert.equal(victim.json.status, "qr_scanning");
    const victims = await gw.call("GET", "/api/v1/accounts", { key });
    assert.deepEqual(
      victims.json.items.map((a: { id: string }) => a.id),
      [foreignAccount],
    );
  });

  it("a large body without a valid key is refused (401) before it is read", async () => {
    // 20 MB announced (within the media routes' limit), 64 kB sent: the answer must not wait for the rest.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(gw.port, "127.0.0.1");
      let text = "";
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error("no answer while the body was still to come: the gateway waited for it"));
      }, 5000);
      socket.on("data", (c) => {
        text += c.toString("latin1");
        if (text.includes("\r\n\r\n")) {
          clearTimeout(timer);
          socket.destroy();
          resolve(text);
        }
      });
      socket.on("error", reject);
      socket.write(
        `POST /api/v1/accounts/${foreignAccount}/messages HTTP/1.1\r\nHost: x\r\n` +
          "Authorization: Bearer sbk_nosuchkey_000000000000000000000000\r\n" +
          "Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n" +
          `{"to":"4915100000002","text":"${"a".repeat(65536)}`,
      );
    });
    assert.match(answer, /^HTTP\/1\.1 401 /);
  });

  it("a body nested 5,000 deep is a 400 BAD_JSON, not a 500 from the call's encoding; 32 levels pass", async () => {
    // Written as text: the client's own JSON encoding would overflow its stack first.
    const nested = (depth: number) => `${'{"a":'.repeat(depth)}"x"${"}".repeat(depth)}`;
    const body = (depth: number) => `{"from":"15550002222","text":"x","location":${nested(depth)}}`;
    const path = `/api/v1/accounts/${ownAccount}/simulate/message`;
    const json = { "content-type": "application/json" };
    const deep = await gw.call("POST", path, { key: attackerKey, body: body(5000), headers: json });
    assert.equal(deep.status, 400, String(deep.body));
    assert.equal(deep.json.type, "BAD_JSON");
    assert.match(deep.json.message, /nested deeper than 32 levels/);
    // Within the depth: whatever the route says of it (a 4xx for a location that is no location).
    const shallow = await gw.call("POST", path, { key: attackerKey, body: body(30), headers: json });
    assert.ok(shallow.status >= 400 && shallow.status < 500, String(shallow.body));
    assert.notEqual(shallow.json.type, "BAD_JSON");
  });

  it("a large body of many small values, listed or nested, is a 413 before it is parsed; as many in a string pass", async () => {
    const path = `/api/v1/accounts/${ownAccount}/messages`;
    const many = `{"to":"4915100000002","text":"x","junk":[${"0,".repeat(70_000)}0]}`;
    const json = { "content-type": "application/json" };
    const refused = await gw.call("POST", path, { key: attackerKey, body: many, headers: json });
    assert.equal(refused.status, 413, String(refused.body));
    assert.equal(refused.json.type, "PAYLOAD_TOO_LARGE");
    assert.deepEqual(refused.json.data, { maxValues: 65536 });
    // Nested, with no comma at all: as many values, as long to parse.
    const nested = `{"to":"4915100000002","text":"x","junk":${"[".repeat(70_000)}${"]".repeat(70_000)}}`;
    const deep = await gw.call("POST", path, { key: attackerKey, body: nested, headers: json });
    assert.equal(deep.status, 413, String(deep.body));
    assert.equal(deep.json.type, "PAYLOAD_TOO_LARGE");
    // The same bytes in one string (as media in base64 are) is a body like any other.
    const text = await gw.call("POST", path, {
      key: attackerKey,
      body: { to: "4915100000002", text: "a".repeat(140_000) },
    });
    assert.notEqual(text.status, 413, String(text.body));
  });

  it("a large body of many values in UTF-7 (commas as +ACw-) is a 415, not read past the value count", async () => {
    const path = `/api/v1/accounts/${ownAccount}/messages`;
    const many = `{"to":"4915100000002","text":"x","junk":[${"0+ACw-".repeat(70_000)}0]}`;
    const refused = await gw.call("POST", path, {
      key: attackerKey,
      body: many,
      headers: { "content-type": "application/json; charset=utf-7" },
    });
    assert.equal(refused.status, 415, String(refused.body).slice(0, 300));
    assert.equal(refused.json.type, "UNSUPPORTED_MEDIA_TYPE");
    assert.deepEqual(refused.json.data, { charset: "utf-7" });
  });

  it("a path no route has gets the small body limit, not the media route's: 413 past 64 kB, else 404", async () => {
    const large = await gw.call("POST", "/api/v1/accounts/x/nosuch", {
      key: attackerKey,
      body: { text: "a".repeat(100_000) },
    });
    assert.equal(large.status, 413, String(large.body));
    assert.deepEqual(large.json.data, { limit: "64kb" });
    const small = await gw.call("POST", "/api/v1/accounts/x/nosuch", { key: attackerKey, body: {} });
    assert.equal(small.status, 404);
    assert.equal(small.json.type, "ROUTE_NOT_FOUND");
  });

  it("a body whose Content-Length is past its route's limit is a 413 at once, the connection closed: nothing more is read", async () => {
    /** Headers and the first 16 kB of a body that never comes whole; what the gateway answers before
     * it closes the connection. */
    const announce = (path: string, length: number) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(gw.port, "127.0.0.1");
        let text = "";
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error(`no answer and close while the body was still to come: ${text.slice(0, 200)}`));
        }, 5000);
        socket.on("data", (c) => (text += c.toString("latin1")));
        socket.on("error", reject);
        socket.on("end", () => {
          clearTimeout(timer);
          socket.destroy();
          resolve(text);
        });
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${attackerKey}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n` +
            `{"to":"4915100000002","text":"${"a".repeat(16 * 1024)}`,
        );
      });
    const check = (answer: string, limit: string) => {
      const [head, body] = answer.split("\r\n\r\n");
      assert.match(head, /^HTTP\/1\.1 413 /);
      assert.match(head, /\r\nconnection: close\r\n/i);
      const json = JSON.parse(body);
      assert.equal(json.type, "PAYLOAD_TOO_LARGE");
      assert.deepEqual(json.data, { limit });
    };
    // The media route's limit is MEDIA_MAX_BYTES (16 MB) in base64 plus 64 kB: ~21.4 MB.
    check(
      await announce(`/api/v1/accounts/${ownAccount}/messages`, 30_000_000),
      "MEDIA_MAX_BYTES in base64 plus 64kb",
    );
    check(await announce("/api/v1/accounts", 100_000), "64kb");
    // Announced that large, more than a key's 4 upload slots at once: none was taken.
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => announce(`/api/v1/accounts/${ownAccount}/messages`, 30_000_000)),
    );
    for (const answer of answers) check(answer, "MEDIA_MAX_BYTES in base64 plus 64kb");
  });

  it("a key holds at most 4 large bodies in flight on a gateway: the 5th is refused 429 before it is read", async () => {
    const path = `/api/v1/accounts/${ownAccount}/messages`;
    /** A large body that never finishes: it holds its slot until the socket goes. */
    const stalled = () => {
      const socket = connect(gw.port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${attackerKey}\r\n` +
          "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" +
          `{"to":"4915100000002","text":"${"a".repeat(70000)}`,
      );
      return socket;
    };
    /** A whole large body (100 kB): answered once read, its slot free again. */
    const whole = (key: string) =>
      gw.call("POST", path, { key, body: { to: "4915100000002", text: "b".repeat(100 * 1024) } });
    const held = Array.from({ length: 4 }, stalled);
    try {
      const refused = await waitFor(
        async () => {
          const res = await whole(attackerKey);
          return res.status === 429 ? res : null;
        },
        { what: "a 5th large body refused while 4 are held" },
      );
      assert.equal((refused.json as { type?: string }).type, "TOO_MANY_UPLOADS");
      assert.equal(refused.headers["retry-after"], "1");
      assert.notEqual((await whole(key)).status, 429, "another key is not held back");
      held.pop()!.destroy();
      await waitFor(async () => (await whole(attackerKey)).status !== 429, {
        what: "a slot free again once a held body's request ended",
      });
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
