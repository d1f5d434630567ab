// Before each bench of `npm run bench -- all`, wait for the machine to be quiet: the previous bench's
// processes may still be exiting (FerretDB checkpointing its log, Chromium tearing down, the kernel
// writing back), and a bench that starts on busy cores measures its predecessor too. Busy is the
// share of all cores' time spent outside idle and I/O wait over a window (/proc/stat, Linux).
import { readFileSync } from "node:fs";

function cpuTimes(): { busy: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3] - (fields[4] ?? 0), total };
}

/** The share of CPU time that was busy over the next `windowMs`. */
export async function busyShare(windowMs: number): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, windowMs));
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

export interface Quiet {
  /** Busy share of the last window before the bench started. */
  busy: number;
  waitedMs: number;
  /** False: the machine did not get quiet within the time allowed; the bench started anyway. */
  quiet: boolean;
}

/** Resolves once a 1 s window is at most `maxBusy` busy, or after `timeoutMs`, saying which. */
export async function waitForQuiet(
  log: (line: string) => void,
  { maxBusy = 0.15, timeoutMs = 30000 }: { maxBusy?: number; timeoutMs?: number } = {},
): Promise<Quiet> {
  const started = Date.now();
  for (;;) {
    const busy = await busyShare(1000);
    const waitedMs = Date.now() - started;
    if (busy <= maxBusy) return { busy, waitedMs, quiet: true };
    if (waitedMs >= timeoutMs) {
      log(
        `the machine is still ${Math.round(busy * 100)} % busy after ${waitedMs / 1000} s: starting anyway`,
      );
      return { busy, waitedMs, quiet: false };
    }
    log(`waiting for the machine to settle: ${Math.round(busy * 100)} % busy`);
  }
}
