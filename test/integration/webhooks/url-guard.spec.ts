// A webhook URL that points inward is refused when it is registered (422 URL_NOT_ALLOWED), by its
// literal address or by what its name resolves to; the connection-time guard (ssrf.spec.ts) still
// covers names that change later.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { TestCluster } from "../../support/cluster.ts";

describe("webhooks: internal URLs refused at registration", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let pub: ServiceBroker;

  before(async () => {
    // No allow-list here (the suite's default allows loopback for its local receivers).
    cluster = new TestCluster({ webhookAllowPrivate: "" }, "whurl");
    cluster.node("wh1", [WebhooksSchema as unknown as ServiceSchema]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
  });
  after(async () => cluster?.stop());

  for (const url of [
    "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:9000/hook",
    "http://[fd00:ec2::254]/",
    "http://localhost:3000/hook",
  ]) {
    it(`refuses ${url} with 422 URL_NOT_ALLOWED`, async () => {
      await assert.rejects(pub.call("webhooks.create", { workspaceId: "ws_url", url }), {
        code: 422,
        type: "URL_NOT_ALLOWED",
      });
    });
  }

  it("refuses it on update too, and accepts a public address", async () => {
    const created: { id: string } = await pub.call("webhooks.create", {
      workspaceId: "ws_url",
      url: "http://93.184.216.34/hook",
    });
    await assert.rejects(
      pub.call("webhooks.update", { workspaceId: "ws_url", id: created.id, url: "http://192.168.1.1/" }),
      { code: 422, type: "URL_NOT_ALLOWED" },
    );
  });
});
