// Whether a session's Chromium gets its sandbox (flags.ts), and how DevTools messages are framed on
// its pipe (devtools-pipe.ts): pure logic over facts and streams, no browser.
import { strict as assert } from "node:assert";
import { PassThrough } from "node:stream";
import { PipeTransport } from "../../../src/engines/webjs/devtools-pipe.ts";
import {
  decideSandbox,
  runsSingleProcess,
  sessionFlags,
  type SandboxFacts,
} from "../../../src/engines/webjs/flags.ts";

/** An unprivileged process on a kernel that allows user namespaces. */
const allowed: SandboxFacts = {
  uid: 1000,
  unprivilegedUsernsClone: null,
  maxUserNamespaces: "63000",
  apparmorRestrictsUserns: null,
  userNamespaceWorks: true,
  setuidHelper: null,
};

describe("decideSandbox", () => {
  it("is on for an unprivileged process where user namespaces work", () => {
    assert.deepEqual(decideSandbox(allowed), {
      sandbox: true,
      reason: "unprivileged user namespaces are available",
    });
    assert.equal(decideSandbox({ ...allowed, unprivilegedUsernsClone: "1" }).sandbox, true);
    assert.equal(decideSandbox({ ...allowed, userNamespaceWorks: null }).sandbox, true, "not probed");
  });

  it("is off as root, whatever the kernel allows: Chromium refuses its sandbox there", () => {
    const d = decideSandbox({ ...allowed, uid: 0, setuidHelper: "/usr/lib/chromium/chrome-sandbox" });
    assert.equal(d.sandbox, false);
    assert.match(d.reason, /running as root/);
  });

  for (const [fact, value, reason] of [
    ["unprivilegedUsernsClone", "0", /kernel\.unprivileged_userns_clone is 0/],
    ["maxUserNamespaces", "0", /user\.max_user_namespaces is 0/],
    ["apparmorRestrictsUserns", "1", /apparmor_restrict_unprivileged_userns is 1/],
    ["userNamespaceWorks", false, /may not create user namespaces/],
  ] as const) {
    it(`is off when ${fact} is ${String(value)}, unless the setuid helper is installed`, () => {
      const off = decideSandbox({ ...allowed, [fact]: value });
      assert.equal(off.sandbox, false);
      assert.match(off.reason, reason);
      assert.match(off.reason, /setuid sandbox helper is not installed/);
      const helper = decideSandbox({ ...allowed, [fact]: value, setuidHelper: "/opt/chrome-sandbox" });
      assert.equal(helper.sandbox, true);
      assert.match(helper.reason, /setuid helper \/opt\/chrome-sandbox sandboxes instead/);
    });
  }
});

describe("sessionFlags", () => {
  it("are lean by default: no crash reporting, one renderer, no SwiftShader, one --disable-features list", () => {
    const flags = sessionFlags();
    for (const f of [
      "--disable-crash-reporter",
      "--renderer-process-limit=1",
      "--disable-software-rasterizer",
      "--remote-debugging-pipe",
    ])
      assert.ok(flags.includes(f), f);
    // Chromium keeps only the last --disable-features: there must be one.
    assert.equal(flags.filter((f) => f.startsWith("--disable-features=")).length, 1);
    assert.ok(!flags.includes("--single-process"));
  });

  it("single process keeps the lean flags (--disable-software-rasterizer saves about 10 MB in both modes)", () => {
    assert.ok(sessionFlags({ singleProcess: true }).includes("--disable-software-rasterizer"));
  });

  it("single process adds --single-process and --no-zygote, and the sandbox is off (no flag twice)", () => {
    const flags = sessionFlags({ singleProcess: true });
    for (const f of ["--single-process", "--no-zygote", "--no-sandbox"]) assert.ok(flags.includes(f), f);
    assert.equal(new Set(flags).size, flags.length);
  });
});

describe("runsSingleProcess (CHROMIUM_SINGLE_PROCESS)", () => {
  const sandboxed = decideSandbox(allowed);
  const unsandboxed = decideSandbox({ ...allowed, uid: 0 });

  it("auto (and unset): one process exactly where the sandbox cannot run", () => {
    assert.equal(runsSingleProcess("auto", sandboxed), false);
    assert.equal(runsSingleProcess("auto", unsandboxed), true);
    assert.equal(runsSingleProcess(undefined, sandboxed), false);
    assert.equal(runsSingleProcess(undefined, unsandboxed), true);
  });

  it("true and false are obeyed whatever the sandbox", () => {
    for (const decision of [sandboxed, unsandboxed]) {
      assert.equal(runsSingleProcess(true, decision), true);
      assert.equal(runsSingleProcess(false, decision), false);
    }
  });
});

describe("PipeTransport (DevTools over Chromium's fds 3 and 4)", () => {
  function pipe() {
    const toChromium = new PassThrough();
    const fromChromium = new PassThrough();
    const transport = new PipeTransport(toChromium, fromChromium);
    const received: string[] = [];
    transport.onmessage = (m) => received.push(m);
    return { toChromium, fromChromium, transport, received };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it("ends each sent message with a NUL byte", () => {
    const { toChromium, transport } = pipe();
    transport.send('{"id":1}');
    transport.send('{"id":2}');
    assert.equal(toChromium.read().toString(), '{"id":1}\0{"id":2}\0');
  });

  it("cuts messages at NUL bytes across chunks, multi-byte characters split between chunks included", async () => {
    const { fromChromium, received } = pipe();
    const text = Buffer.from('{"v":"grüße ✓"}\0{"id":2}\0{"id":', "utf8");
    const cut = text.indexOf(Buffer.from("ü")) + 1; // inside the two bytes of "ü"
    fromChromium.write(text.subarray(0, cut));
    fromChromium.write(text.subarray(cut));
    fromChromium.write(Buffer.from("3}\0"));
    await tick();
    await tick();
    assert.deepEqual(received, ['{"v":"grüße ✓"}', '{"id":2}', '{"id":3}']);
  });

  it("request() resolves with the result of its own id and leaves other messages to onmessage", async () => {
    const { toChromium, fromChromium, transport, received } = pipe();
    const answer = transport.request(0, "Browser.getVersion");
    assert.equal(toChromium.read().toString(), '{"id":0,"method":"Browser.getVersion"}\0');
    fromChromium.write('{"id":0,"result":{"product":"Chrome/156"}}\0');
    assert.deepEqual(await answer, { product: "Chrome/156" });
    fromChromium.write('{"method":"Target.targetCreated"}\0');
    await tick();
    assert.deepEqual(received, ['{"method":"Target.targetCreated"}']);
  });

  it("reports the end of the pipe once, after the messages before it, and sends nothing after", async () => {
    const { toChromium, fromChromium, transport, received } = pipe();
    let closes = 0;
    transport.onclose = () => closes++;
    fromChromium.write('{"id":9}\0');
    fromChromium.destroy();
    await new Promise((r) => fromChromium.once("close", r));
    await tick();
    await tick();
    assert.deepEqual(received, ['{"id":9}']);
    assert.equal(closes, 1);
    assert.equal(transport.isClosed, true);
    transport.send('{"id":10}');
    transport.close();
    assert.equal(toChromium.read(), null);
    assert.equal(closes, 1);
  });
});
