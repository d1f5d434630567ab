// Benchmarks: `npm run bench -- <name> [--json] [--option value ...]`. Each bench module exports
// `run(args: BenchArgs): Promise<BenchResult>`; the result is printed as one JSON object with --json,
// readably otherwise. A result with `pass: false` (a bar missed) exits with status 1.
// Owners add their bench by one line in BENCHES.

export interface BenchArgs {
  json: boolean;
  /** `--name value` pairs (`--flag` alone gives true). */
  options: Record<string, string | boolean>;
  positional: string[];
}

export type BenchResult = Record<string, unknown>;

const BENCHES: Record<string, () => Promise<{ run(args: BenchArgs): Promise<BenchResult> }>> = {
  placement: () => import("./placement.ts"),
  failover: () => import("./failover.ts"),
  "sessions-memory": () => import("./sessions-memory.ts"),
  events: () => import("./events.ts"),
  routing: () => import("./routing.ts"),
  webhooks: () => import("./webhooks.ts"),
};

export function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = { json: false, options: {}, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") continue;
    if (a === "--json") args.json = true;
    else if (a.startsWith("--")) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        args.options[a.slice(2)] = next;
        i++;
      } else args.options[a.slice(2)] = true;
    } else args.positional.push(a);
  }
  return args;
}

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  const load = name ? BENCHES[name] : undefined;
  if (!load) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join("|")}> [--json]`);
    process.exit(2);
  }
  const args = parseArgs(rest);
  const result = await (await load()).run(args);
  console.log(args.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  process.exit(result.pass === false ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
