// Benchmarks: `npm run bench -- <name> [--json]`. Each bench module exports
// `run(args): Promise<result>`; the result is printed as one JSON object with --json, readably
// otherwise. A result with `pass: false` (a bar missed) exits with status 1.
// Owners add their bench by one line in BENCHES.
const BENCHES: Record<string, () => Promise<{ run(args: string[]): Promise<Record<string, unknown>> }>> = {
  placement: () => import("./placement.ts"),
};

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  const json = rest.includes("--json");
  const load = name ? BENCHES[name] : undefined;
  if (!load) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join("|")}> [--json]`);
    process.exit(2);
  }
  const result = await (await load()).run(rest.filter((a) => a !== "--json"));
  console.log(json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  process.exit(result.pass === false ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
