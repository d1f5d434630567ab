// Numeric `--name value` options of a bench: the value when it is a number, else the default.
import type { BenchArgs } from "../index.ts";

export function numberOption(args: BenchArgs | undefined, name: string, fallback: number): number {
  const v = args?.options[name];
  return typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : fallback;
}
