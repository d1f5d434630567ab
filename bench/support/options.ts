// Numeric `--name value` options of a bench: the value when it is a number, else the default.
import type { BenchArgs } from "../index.ts";

export function numberOption(args: BenchArgs | undefined, name: string, fallback: number): number {
  const v = args?.options[name];
  return typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : fallback;
}

/** The `--name MS` options given of `map` (option → environment name), as environment values; none
 * given: `{}`, and the workers run the defaults of src/config.ts. */
export function timingOptions(
  args: BenchArgs | undefined,
  map: Record<string, string>,
): Record<string, string> {
  const timings: Record<string, string> = {};
  for (const [option, env] of Object.entries(map)) {
    const v = numberOption(args, option, NaN);
    if (Number.isFinite(v)) timings[env] = String(v);
  }
  return timings;
}
