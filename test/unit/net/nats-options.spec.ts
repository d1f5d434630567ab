import { strict as assert } from "node:assert";
import { loadConfig, type NatsSecurity } from "../../../src/config.ts";
import { natsConnectionOptions, splitNatsUrl } from "../../../src/nats-options.ts";
import { redactUrl } from "../../../src/redact.ts";

describe("nats-options", () => {
  const base = loadConfig();
  const none: NatsSecurity = {
    user: "",
    password: "",
    token: "",
    nkeySeed: "",
    credsFile: "",
    tlsCa: "",
    tlsCert: "",
    tlsKey: "",
  };

  it("keeps credentials of NATS_URL out of the servers and passes them as options", () => {
    assert.deepEqual(splitNatsUrl("nats://u:p%40ss@a:4222,nats://b:4223"), {
      servers: ["nats://a:4222", "nats://b:4223"],
      user: "u",
      pass: "p@ss",
      tls: false,
    });
    const opts = natsConnectionOptions({ ...base, natsUrl: "nats://u:pw@h:1", nats: none });
    assert.deepEqual(opts, { servers: ["nats://h:1"], user: "u", pass: "pw" });
    const token = natsConnectionOptions({ ...base, natsUrl: "nats://s3cret@h:1", nats: none });
    assert.deepEqual(token, { servers: ["nats://h:1"], token: "s3cret" });
  });

  it("prefers explicit settings and turns TLS on with any TLS file or a tls:// URL", () => {
    const opts = natsConnectionOptions({
      ...base,
      natsUrl: "tls://x:y@h:1",
      nats: { ...none, user: "me", password: "pw", tlsCa: "/ca.pem" },
    });
    assert.deepEqual(opts, { servers: ["tls://h:1"], user: "me", pass: "pw", tls: { caFile: "/ca.pem" } });
    const token = natsConnectionOptions({ ...base, natsUrl: "nats://h:1", nats: { ...none, token: "t" } });
    assert.deepEqual(token, { servers: ["nats://h:1"], token: "t" });
  });

  it("redacts user:password and token parts of URLs for logs", () => {
    assert.equal(redactUrl("nats://u:p@a:1,nats://tok@b:2"), "nats://***@a:1,nats://***@b:2");
    assert.equal(
      redactUrl("mongodb://root:pw@mongo:27017/db?authSource=admin"),
      "mongodb://***@mongo:27017/db?authSource=admin",
    );
    assert.equal(redactUrl("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
  });
});
