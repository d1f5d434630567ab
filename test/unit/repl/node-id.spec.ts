// The console never joins under the NODE_ID of the node whose environment it was opened in.
import { strict as assert } from "node:assert";
import { consoleNodeId } from "../../../src/repl/node-id.ts";

describe("repl/node-id", () => {
  it("ignores NODE_ID (the container's node), takes REPL_NODE_ID, else repl-<host>-<pid>", () => {
    assert.match(consoleNodeId({ NODE_ID: "gateway" }), new RegExp(`^repl-.+-${process.pid}$`));
    assert.equal(consoleNodeId({ NODE_ID: "gateway", REPL_NODE_ID: " ops-console " }), "ops-console");
    assert.match(consoleNodeId({ REPL_NODE_ID: " " }), /^repl-/);
  });
});
