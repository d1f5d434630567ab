// Where the CPU goes during a bench phase: CPU seconds of every process under this one (servers,
// Switchboard nodes, baseline servers), read from /proc (Linux). Processes are labelled by what they
// run: ferretdb, nats-server, or a node's NODE_ID / LEGACY_ROLE from its environment.
import { readFileSync, readdirSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Proc {
  pid: number;
  ppid: number;
  label: string;
}

function stat(pid: number): { ppid: number; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may contain spaces) start after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

function labelOf(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
    if (cmd.includes("ferretdb")) return "ferretdb";
    if (cmd.includes("nats-server")) return "nats-server";
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const get = (k: string) => env.find((e) => e.startsWith(`${k}=`))?.slice(k.length + 1);
    const role = get("LEGACY_ROLE");
    if (role) return `baseline-${role}`;
    const node = get("NODE_ID");
    if (node && cmd.includes("node-process")) return `node-${node}`;
    return "";
  } catch {
    return "";
  }
}

/** Every labelled descendant of `root` (tsx launchers are skipped: their child does the work). */
export function processTree(root = process.pid): Proc[] {
  const all: Proc[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (s) all.push({ pid, ppid: s.ppid, label: "" });
  }
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      c.label = labelOf(c.pid);
      if (c.label) out.push(c);
      walk(c.pid);
    }
  };
  walk(root);
  // A tsx launcher and its node child share the environment: keep the deepest one of each label.
  const byLabel = new Map<string, Proc>();
  for (const p of out) byLabel.set(p.label, p);
  return [...byLabel.values()];
}

export interface CpuSample {
  at: number;
  ticks: Map<string, number>;
}

export function sampleCpu(procs: Proc[]): CpuSample {
  const ticks = new Map<string, number>();
  for (const p of procs) ticks.set(p.label, stat(p.pid)?.ticks ?? 0);
  ticks.set("bench-load-generator", stat(process.pid)?.ticks ?? 0);
  return { at: performance.now(), ticks };
}

/** CPU seconds per process between two samples, and the share of one core each used. */
export function cpuBetween(
  a: CpuSample,
  b: CpuSample,
): Record<string, { cpuSeconds: number; cores: number }> {
  const wall = (b.at - a.at) / 1000;
  const out: Record<string, { cpuSeconds: number; cores: number }> = {};
  for (const [label, t] of b.ticks) {
    const cpuSeconds = (t - (a.ticks.get(label) ?? t)) / TICKS_PER_SECOND;
    out[label] = {
      cpuSeconds: Math.round(cpuSeconds * 100) / 100,
      cores: Math.round((cpuSeconds / wall) * 100) / 100,
    };
  }
  return out;
}
