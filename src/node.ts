// One Switchboard node: a ServiceBroker with the services named in `cfg.services` (SERVICES).
// Each service lives in services/<name>.service.ts and is imported only when the node runs it, so a
// worker never loads the gateway's dependencies and a name whose file does not exist yet is a clear
// startup error. "io" serves Socket.IO on the api service's HTTP server, so it needs "api" on the
// same node.
//
// A service file default-exports either its schema or a factory `(cfg: Config) => schema` (for
// services whose shape depends on the node's configuration, such as api: port, CORS).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ServiceBroker, type BrokerOptions, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import { ALL_SERVICES, type Config } from "./config.ts";
import { ROOT } from "./dev/servers.ts";

/** scripts/node.ts prints this once its broker has started and joined NATS; `npm start` waits for it. */
export const NODE_STARTED_MARK = "node started:";

export type ServiceName = (typeof ALL_SERVICES)[number];

/** Services that run inside another service of the same node: name → host service. */
export const HOSTED_SERVICES: Readonly<Record<string, ServiceName>> = { io: "api" };

type ServiceFactory = (cfg: Config) => ServiceSchema | ServiceSchema[];

export function serviceFile(name: string, root = ROOT): string {
  return join(root, "services", `${name}.service.ts`);
}

/** Which of `wanted` exist in this checkout (a hosted service also needs its host service). Used by
 * `npm start` to run what has been built so far. */
export function availableServices(wanted: readonly string[] = ALL_SERVICES, root = ROOT): string[] {
  return wanted.filter((name) => {
    const host = HOSTED_SERVICES[name];
    if (host && !existsSync(serviceFile(host, root))) return false;
    return existsSync(serviceFile(name, root));
  });
}

/** Checks SERVICES and returns the service files to load, in order; throws a message that names the
 * offending service. */
export function serviceFilesFor(services: readonly string[], root = ROOT): { name: string; file: string }[] {
  if (services.length === 0)
    throw new Error("SERVICES is empty: name at least one of " + ALL_SERVICES.join(","));
  const seen = new Set<string>();
  const files: { name: string; file: string }[] = [];
  for (const name of services) {
    if (!(ALL_SERVICES as readonly string[]).includes(name)) {
      throw new Error(`unknown service "${name}" in SERVICES; known: ${ALL_SERVICES.join(", ")}`);
    }
    if (seen.has(name)) continue;
    seen.add(name);
    const host = HOSTED_SERVICES[name];
    if (host && !services.includes(host)) {
      throw new Error(
        `service "${name}" runs inside the "${host}" service's server: add "${host}" to SERVICES`,
      );
    }
    const file = serviceFile(name, root);
    if (!existsSync(file)) throw new Error(`service "${name}" is not built yet: ${file} does not exist`);
    files.push({ name, file });
  }
  return files;
}

function looksLikeSchema(value: unknown): value is ServiceSchema {
  return (
    typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string"
  );
}

/** Imports one service file and turns its export into schemas. */
export async function loadServiceSchemas(name: string, file: string, cfg: Config): Promise<ServiceSchema[]> {
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  let exported: unknown = mod.default;
  if (exported === undefined) {
    const candidates = Object.values(mod).filter((v) => looksLikeSchema(v) || typeof v === "function");
    if (candidates.length === 1) exported = candidates[0];
  }
  if (typeof exported === "function") exported = (exported as ServiceFactory)(cfg);
  const schemas = Array.isArray(exported) ? exported : [exported];
  if (schemas.length === 0 || !schemas.every(looksLikeSchema)) {
    throw new Error(
      `service "${name}": ${file} must default-export a service schema or a factory (cfg) => schema`,
    );
  }
  return schemas;
}

/** Builds (does not start) the broker of one node running `cfg.services`. */
export async function createNodeBroker(
  cfg: Config,
  overrides: Partial<BrokerOptions> = {},
): Promise<ServiceBroker> {
  const files = serviceFilesFor(cfg.services);
  const schemas: ServiceSchema[] = [];
  for (const { name, file } of files) schemas.push(...(await loadServiceSchemas(name, file, cfg)));
  const broker = new ServiceBroker(brokerOptions(cfg, overrides));
  for (const schema of schemas) broker.createService(schema);
  return broker;
}
