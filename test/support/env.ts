// Where the run's servers are (filled by root-hooks.ts before any spec runs).
import type { RunningServer } from "../../src/dev/servers.ts";
import { SecretBox } from "../../src/store/secrets.ts";

export const testEnv: {
  natsUrl: string;
  mongoUrl: string;
  dataDir: string;
  /** Present when the harness started the server itself (so a test may restart it). */
  nats?: RunningServer;
  mongo?: RunningServer;
} = { natsUrl: "", mongoUrl: "", dataDir: "" };

/** A database name of its own per test file, so specs never see each other's documents. */
export function mongoUrlFor(dbName: string): string {
  const url = new URL(testEnv.mongoUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
}

/** The SecretBox of this run's SECRETS_KEY (root-hooks.ts sets one), for specs that read stored state. */
export function testSecrets(): SecretBox | null {
  return SecretBox.fromSettings(process.env.SECRETS_KEY ?? "");
}
