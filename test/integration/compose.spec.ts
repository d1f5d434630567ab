// docker-compose.yml, the Dockerfile and the README agree with the code. No Docker engine runs here, so
// the file is parsed and checked: every node's environment names a real setting (src/config.ts), the
// images, ports, volumes and healthchecks are consistent, and workers can be scaled.
import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { brokerOptions } from "../../moleculer.config.ts";
import { ALL_SERVICES, ENV_NAMES, loadConfig } from "../../src/config.ts";
import { ROOT } from "../../src/dev/servers.ts";

interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target?: number; published?: number | string })[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
  restart?: string;
  shm_size?: string | number;
  container_name?: string;
  init?: boolean;
  read_only?: boolean;
  tmpfs?: string | string[];
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  mem_limit?: string | number;
  pids_limit?: number;
  stop_grace_period?: string;
}

const composeText = readFileSync(join(ROOT, "docker-compose.yml"), "utf8");
const compose = parse(composeText, { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

function env(svc: ComposeService): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(svc.environment)) {
    for (const item of svc.environment) {
      const [k, ...v] = item.split("=");
      out[k] = v.join("=");
    }
  } else {
    for (const [k, v] of Object.entries(svc.environment ?? {})) out[k] = v === null ? "" : String(v);
  }
  return out;
}

/** A value as compose would see it: `${N:-default}` gives the default, any other `${N...}` a sample. */
function interpolated(value: string): string {
  return value.replace(/\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}/g, (_, name: string, def?: string) =>
    def !== undefined ? def : `sample-${name.toLowerCase()}`,
  );
}

/** Services built from this repository's Dockerfile: the Switchboard nodes. */
const nodeNames = Object.keys(services).filter((n) => services[n].build !== undefined);

/** "HOST:CONTAINER[/proto]" or long syntax → container port. */
function containerPort(p: string | number | { target?: number }): number {
  if (typeof p === "object") return Number(p.target);
  const parts = String(p)
    .replace(/\/\w+$/, "")
    .split(":");
  return Number(parts[parts.length - 1]);
}

function hasHealthcheck(svc: ComposeService | undefined): boolean {
  const test = svc?.healthcheck?.test;
  return !!svc?.healthcheck && !svc.healthcheck.disable && !!test && test.length > 0 && test[0] !== "NONE";
}

describe("docker-compose.yml and the Dockerfile", () => {
  it("has nats with JetStream, mongo 7, a gateway and a worker; the nodes share the image built here", () => {
    assert.deepEqual(Object.keys(services).sort(), ["gateway", "mongo", "nats", "worker"]);
    assert.match(services.nats.image ?? "", /^nats:2\.10(\b|-)/);
    const natsArgs = ([] as string[]).concat(services.nats.command ?? []).join(" ");
    assert.match(natsArgs, /(^|\s)(-js|--jetstream)(\s|$)/, "JetStream is on");
    assert.match(services.mongo.image ?? "", /^mongo:7(\b|\.)/);
    assert.deepEqual(nodeNames.sort(), ["gateway", "worker"]);
    const images = new Set(nodeNames.map((n) => services[n].image));
    assert.equal(images.size, 1, "gateway and worker run the same image");
    for (const n of nodeNames) {
      const build = services[n].build;
      const context = typeof build === "string" ? build : (build?.context ?? ".");
      assert.ok([".", "./"].includes(context), `${n} builds from the repository root`);
    }
  });

  it("gives each node only settings that src/config.ts reads, and valid SERVICES", () => {
    for (const n of nodeNames) {
      const vars = env(services[n]);
      for (const name of Object.keys(vars)) {
        assert.ok(ENV_NAMES.includes(name), `${n}: ${name} is not a setting of src/config.ts`);
      }
      const list = (vars.SERVICES ?? "").split(",").map((s) => s.trim());
      for (const s of list)
        assert.ok((ALL_SERVICES as readonly string[]).includes(s), `${n}: unknown service ${s}`);
      // The nodes reach the servers by their compose service names.
      assert.equal(new URL(interpolated(vars.NATS_URL)).hostname, "nats", `${n}: NATS_URL`);
      assert.equal(new URL(interpolated(vars.MONGO_URL)).hostname, "mongo", `${n}: MONGO_URL`);
    }
    assert.deepEqual(env(services.gateway).SERVICES.split(","), ["api", "io", "accounts", "webhooks"]);
    assert.deepEqual(env(services.worker).SERVICES.split(","), ["session"]);
    assert.ok(env(services.gateway).ADMIN_API_KEY, "the gateway gets ADMIN_API_KEY");
  });

  it("publishes the gateway's PORT and nothing of the workers, which scale (shm for Chromium)", () => {
    const gw = services.gateway;
    assert.equal(gw.ports?.length, 1);
    assert.equal(containerPort(gw.ports![0]), Number(env(gw).PORT), "container port = PORT");
    const worker = services.worker;
    assert.equal(worker.ports, undefined, "workers publish no ports (--scale would collide)");
    assert.equal(worker.container_name, undefined, "workers have no fixed name (--scale)");
    assert.ok(worker.shm_size, "workers set shm_size for Chromium");
    for (const n of Object.keys(services)) assert.ok(services[n].restart, `${n} has a restart policy`);
  });

  it("declares every named volume it mounts, mounts every one it declares (data of nats and mongo)", () => {
    const declared = Object.keys(compose.volumes ?? {});
    const used = new Set<string>();
    for (const [n, svc] of Object.entries(services)) {
      for (const v of svc.volumes ?? []) {
        const source = typeof v === "string" ? v.split(":")[0] : (v.source ?? "");
        if (!source || /^[./~]/.test(source)) continue; // bind mounts
        assert.ok(declared.includes(source), `${n} mounts undeclared volume ${source}`);
        used.add(source);
      }
    }
    assert.deepEqual([...used].sort(), declared.sort());
    const target = (svc: ComposeService) =>
      (svc.volumes ?? []).map((v) => (typeof v === "string" ? v.split(":")[1] : v.target));
    assert.ok(target(services.mongo).includes("/data/db"), "mongo data on a volume");
    const natsStore = ([] as string[])
      .concat(services.nats.command ?? [])
      .join(" ")
      .match(/-sd\s+(\S+)/)?.[1];
    assert.ok(natsStore && target(services.nats).includes(natsStore), "JetStream store on a volume");
  });

  it("has healthchecks, and every depends_on condition waits on a service that has one", () => {
    for (const n of ["nats", "mongo", "gateway"])
      assert.ok(hasHealthcheck(services[n]), `${n} has a healthcheck`);
    for (const [n, svc] of Object.entries(services)) {
      const deps = svc.depends_on ?? [];
      const entries = Array.isArray(deps) ? deps.map((d) => [d, {}] as const) : Object.entries(deps);
      for (const [dep, opts] of entries) {
        assert.ok(services[dep], `${n} depends on unknown service ${dep}`);
        if ((opts as { condition?: string }).condition === "service_healthy") {
          assert.ok(
            hasHealthcheck(services[dep]),
            `${n} waits for ${dep} to be healthy, which has no healthcheck`,
          );
        }
      }
    }
    for (const n of nodeNames) {
      const deps = services[n].depends_on as Record<string, { condition?: string }>;
      assert.equal(deps?.nats?.condition, "service_healthy", `${n} waits for a healthy nats`);
      assert.equal(deps?.mongo?.condition, "service_healthy", `${n} waits for a healthy mongo`);
    }
  });

  it("documents in its header every variable it interpolates", () => {
    const header = composeText
      .split("\n")
      .filter((l) => l.startsWith("#"))
      .join("\n");
    const interpolated = new Set([...composeText.matchAll(/\$\{(\w+)/g)].map((m) => m[1]));
    for (const name of interpolated)
      assert.match(header, new RegExp(`\\b${name}\\b`), `${name} is documented`);
  });

  it("builds Node 22 on Debian with Debian's Chromium, no puppeteer download, and runs `npm run node`", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    assert.match(dockerfile, /^FROM node:22-bookworm-slim\b/m);
    assert.match(dockerfile, /apt-get install[^\n]*\bchromium\b/);
    assert.match(dockerfile, /PUPPETEER_SKIP_DOWNLOAD=true/);
    assert.match(dockerfile, /CHROMIUM_PATH=\/usr\/bin\/chromium/);
    assert.match(dockerfile, /RUN npm ci\b/);
    assert.match(dockerfile, /^CMD \["npm", "run", "node"\]/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    assert.match(pkg.scripts.node, /scripts\/node\.ts/);
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const p of ["node_modules", ".data", ".cache", ".git"])
      assert.ok(ignored.includes(p), `.dockerignore: ${p}`);
  });

  it("hardens every container: no capabilities, no-new-privileges, read-only root, memory and pids limits", () => {
    for (const [n, svc] of Object.entries(services)) {
      assert.deepEqual(svc.cap_drop, ["ALL"], `${n} drops every capability`);
      assert.ok(svc.security_opt?.includes("no-new-privileges:true"), `${n} has no-new-privileges`);
      assert.equal(svc.read_only, true, `${n} has a read-only root`);
      assert.ok(svc.mem_limit, `${n} has a memory limit`);
      assert.ok(Number(svc.pids_limit) > 0, `${n} has a pids limit`);
      // Only mongo's entrypoint needs capabilities back (chown /data/db, switch to its user).
      const added = svc.cap_add ?? [];
      if (n === "mongo")
        for (const c of added) assert.ok(["CHOWN", "SETUID", "SETGID"].includes(c), `mongo adds ${c}`);
      else assert.deepEqual(added, [], `${n} adds no capability`);
    }
    for (const n of nodeNames) {
      const tmpfs = ([] as string[]).concat(services[n].tmpfs ?? []);
      assert.ok(tmpfs.includes("/tmp"), `${n}: /tmp is a tmpfs (Chromium profiles)`);
      assert.ok(!services[n].cap_add?.includes("SYS_ADMIN"), `${n}: no SYS_ADMIN for Chromium's sandbox`);
    }
  });

  it("gives the gateway longer to stop than its graceful stop takes (Docker's default is 10 s)", () => {
    const seconds = (d = "10s") => Number(/^(\d+)s$/.exec(d)?.[1] ?? NaN);
    const cfg = loadConfig();
    // Requests in flight get the broker's shutdownTimeout; then webhook attempts in flight get up to
    // 3 s (delivery-loop.ts) and the recorder leases are released.
    const tracking = brokerOptions(cfg).tracking as { shutdownTimeout: number };
    const stopMs = tracking.shutdownTimeout + Math.min(cfg.webhookTimeoutMs, 3000);
    assert.ok(seconds(services.gateway.stop_grace_period) * 1000 >= stopMs + 5000, `${stopMs} ms + 5 s`);
  });

  it("gives workers a healthcheck on their HEALTH_PORT liveness endpoint", () => {
    const worker = services.worker;
    assert.ok(hasHealthcheck(worker), "worker has a healthcheck");
    const port = env(worker).HEALTH_PORT;
    assert.ok(Number(port) > 0, "worker sets HEALTH_PORT");
    assert.match(
      ([] as string[]).concat(worker.healthcheck?.test ?? []).join(" "),
      new RegExp(`:${port}/health/live`),
    );
    assert.equal(worker.ports, undefined, "the health port is not published");
  });

  it("runs MongoDB with a root user from the environment, and the nodes' MONGO_URL authenticates as it", () => {
    const mongoEnv = env(services.mongo);
    assert.match(mongoEnv.MONGO_INITDB_ROOT_USERNAME, /^\$\{MONGO_ROOT_USER\b/);
    assert.match(
      mongoEnv.MONGO_INITDB_ROOT_PASSWORD,
      /^\$\{MONGO_ROOT_PASSWORD:\?/,
      "the password is required",
    );
    for (const n of nodeNames) {
      const url = new URL(interpolated(env(services[n]).MONGO_URL));
      assert.equal(url.username, interpolated(mongoEnv.MONGO_INITDB_ROOT_USERNAME), `${n}: MONGO_URL user`);
      assert.equal(
        url.password,
        interpolated(mongoEnv.MONGO_INITDB_ROOT_PASSWORD),
        `${n}: MONGO_URL password`,
      );
      assert.equal(url.searchParams.get("authSource"), "admin", `${n}: root users live in admin`);
    }
  });

  it("runs NATS with deploy/nats.conf, whose users are the ones the nodes log in as", () => {
    const nats = services.nats;
    const args = ([] as string[]).concat(nats.command ?? []).join(" ");
    const confPath = args.match(/(?:^|\s)-c\s+(\S+)/)?.[1];
    assert.ok(confPath, "nats-server gets a config file");
    assert.ok(
      (nats.volumes ?? []).some((v) => typeof v === "string" && v === `./deploy/nats.conf:${confPath}:ro`),
      "deploy/nats.conf is mounted read-only where -c points",
    );
    const conf = readFileSync(join(ROOT, "deploy/nats.conf"), "utf8");
    const natsEnv = env(nats);
    for (const role of ["gateway", "worker", "operator"]) {
      const variable = `${role.toUpperCase()}_NATS_PASSWORD`;
      assert.match(
        conf,
        new RegExp(`user: ${role}\\s+password: \\$${variable}\\b`),
        `nats.conf user ${role}`,
      );
      assert.match(natsEnv[variable] ?? "", new RegExp(`^\\$\\{${variable}:\\?`), `nats gets ${variable}`);
    }
    for (const [n, role] of [
      ["gateway", "gateway"],
      ["worker", "worker"],
    ]) {
      const vars = env(services[n]);
      assert.equal(vars.NATS_USER, role, `${n} logs in as ${role}`);
      assert.equal(vars.NATS_PASSWORD, natsEnv[`${role.toUpperCase()}_NATS_PASSWORD`], `${n}: same password`);
      assert.ok(!/@/.test(vars.NATS_URL), `${n}: no credentials inside NATS_URL`);
    }
  });

  it("keeps .env files and keys out of the image", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const p of [".env", ".env*", "node_modules", ".cache", "artifacts"])
      assert.ok(ignored.includes(p), `.dockerignore: ${p}`);
  });

  it("has a README whose configuration table lists every setting of src/config.ts", function () {
    const readme = join(ROOT, "README.md");
    if (!existsSync(readme)) this.skip();
    const text = readFileSync(readme, "utf8");
    for (const name of [...ENV_NAMES, "WORKERS"]) {
      assert.match(text, new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, "m"), `README table row for ${name}`);
    }
  });
});
