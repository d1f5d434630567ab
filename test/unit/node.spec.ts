// src/node.ts: which service files a node loads for SERVICES, and the errors that name what is wrong.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { availableServices, loadServiceSchemas, serviceFile, serviceFilesFor } from "../../src/node.ts";

describe("node: services of a node (src/node.ts)", () => {
  let root: string;
  const write = (rel: string, text = "export default { name: 'x' };\n") => {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), text);
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "switchboard-node-"));
    mkdirSync(join(root, "services"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("loads one file per service, io included (it runs on the api service's server)", () => {
    write("services/api.service.ts");
    write("services/session.service.ts");
    write("services/io.service.ts");
    assert.deepEqual(serviceFilesFor(["api", "io", "session"], root), [
      { name: "api", file: serviceFile("api", root) },
      { name: "io", file: serviceFile("io", root) },
      { name: "session", file: serviceFile("session", root) },
    ]);
  });

  it("names the service whose file does not exist yet", () => {
    write("services/api.service.ts");
    assert.throws(
      () => serviceFilesFor(["api", "session"], root),
      /service "session" is not built yet: .*session\.service\.ts/,
    );
  });

  it("refuses unknown names, io without api, and an empty list", () => {
    write("services/api.service.ts");
    write("services/io.service.ts");
    assert.throws(() => serviceFilesFor(["sesion"], root), /unknown service "sesion".*known: api, io/);
    assert.throws(() => serviceFilesFor(["io"], root), /"io" runs inside the "api" service/);
    assert.throws(() => serviceFilesFor([], root), /SERVICES is empty/);
  });

  it("lists the services that exist, io only with api", () => {
    write("services/accounts.service.ts");
    write("services/io.service.ts");
    assert.deepEqual(availableServices(["api", "io", "accounts", "webhooks"], root), ["accounts"]);
    write("services/api.service.ts");
    assert.deepEqual(availableServices(["api", "io", "accounts", "webhooks"], root), [
      "api",
      "io",
      "accounts",
    ]);
  });

  it("takes a default-exported schema or a factory of the node's config, and rejects anything else", async () => {
    const cfg = { ...loadConfig(), services: ["api", "io"] };
    write("services/plain.service.ts", "export default { name: 'plain', actions: {} };\n");
    write(
      "services/factory.service.ts",
      "export default (cfg: { services: string[] }) => ({ name: 'factory', settings: { io: cfg.services.includes('io') } });\n",
    );
    write("services/bad.service.ts", "export default 42;\n");
    const [plain] = await loadServiceSchemas("plain", join(root, "services/plain.service.ts"), cfg);
    assert.equal(plain.name, "plain");
    const [factory] = await loadServiceSchemas("factory", join(root, "services/factory.service.ts"), cfg);
    assert.deepEqual([factory.name, factory.settings], ["factory", { io: true }]);
    await assert.rejects(
      loadServiceSchemas("bad", join(root, "services/bad.service.ts"), cfg),
      /service "bad": .* must default-export a service schema or a factory/,
    );
  });
});
