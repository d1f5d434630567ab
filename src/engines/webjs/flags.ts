// Chromium's command line for a session, and whether its sandbox can be on. The sandbox is decided once
// per process from facts about this process and the kernel (decideSandbox is pure and unit-tested);
// --no-sandbox is passed only when Chromium's sandbox cannot work here, and the reason is logged once.
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";

/** What decides whether Chromium's sandbox can run (read by `sandboxFacts`). */
export interface SandboxFacts {
  /** Effective uid of this process (Chromium's children run as it). */
  uid: number;
  /** kernel.unprivileged_userns_clone (Debian kernels; null where the sysctl does not exist). */
  unprivilegedUsernsClone: string | null;
  /** user.max_user_namespaces (null when unreadable). */
  maxUserNamespaces: string | null;
  /** kernel.apparmor_restrict_unprivileged_userns (Ubuntu ≥ 23.10; null where absent). */
  apparmorRestrictsUserns: string | null;
  /** Whether this process could create a user namespace (`unshare --user true`); null when not tried. */
  userNamespaceWorks: boolean | null;
  /** Chromium's setuid sandbox helper when installed (root-owned, setuid), else null. */
  setuidHelper: string | null;
}

export interface SandboxDecision {
  sandbox: boolean;
  reason: string;
}

/**
 * Chromium's Linux sandbox needs unprivileged user namespaces, or else its setuid helper; and it
 * refuses to start at all as root unless told --no-sandbox. Root is therefore the first question.
 */
export function decideSandbox(f: SandboxFacts): SandboxDecision {
  if (f.uid === 0) {
    return {
      sandbox: false,
      reason: "running as root, where Chromium refuses its sandbox (run the worker as an unprivileged user)",
    };
  }
  const blocked =
    f.unprivilegedUsernsClone === "0"
      ? "kernel.unprivileged_userns_clone is 0"
      : f.maxUserNamespaces === "0"
        ? "user.max_user_namespaces is 0"
        : f.apparmorRestrictsUserns === "1"
          ? "kernel.apparmor_restrict_unprivileged_userns is 1"
          : f.userNamespaceWorks === false
            ? "this process may not create user namespaces (container seccomp or policy)"
            : null;
  if (blocked === null) return { sandbox: true, reason: "unprivileged user namespaces are available" };
  if (f.setuidHelper) {
    return {
      sandbox: true,
      reason: `${blocked}; Chromium's setuid helper ${f.setuidHelper} sandboxes instead`,
    };
  }
  return { sandbox: false, reason: `${blocked}, and Chromium's setuid sandbox helper is not installed` };
}

function sysctl(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

/** Where Chromium looks for its setuid helper: CHROME_DEVEL_SANDBOX, else beside its binary. */
function setuidHelper(chromiumPath: string): string | null {
  const candidates = [process.env.CHROME_DEVEL_SANDBOX, "/usr/lib/chromium/chrome-sandbox"];
  if (chromiumPath.includes("/")) candidates.push(chromiumPath.replace(/[^/]+$/, "chrome-sandbox"));
  for (const path of candidates) {
    if (!path) continue;
    try {
      const st = statSync(path);
      if (st.uid === 0 && (st.mode & 0o4000) !== 0) return path;
    } catch {
      // not there
    }
  }
  return null;
}

/** The facts of this process and kernel; tries a user namespace only when it is not root. */
export function sandboxFacts(chromiumPath = "/usr/bin/chromium"): SandboxFacts {
  const uid = process.geteuid?.() ?? 0;
  let userNamespaceWorks: boolean | null = null;
  if (uid !== 0) {
    const probe = spawnSync("unshare", ["--user", "true"], { stdio: "ignore", timeout: 5000 });
    userNamespaceWorks = probe.error ? null : probe.status === 0;
  }
  return {
    uid,
    unprivilegedUsernsClone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
    maxUserNamespaces: sysctl("/proc/sys/user/max_user_namespaces"),
    apparmorRestrictsUserns: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    userNamespaceWorks,
    setuidHelper: setuidHelper(chromiumPath),
  };
}

let decided: SandboxDecision | null = null;
let logged = false;

/** This process's decision (facts read once: they do not change while it runs). */
export function sandboxDecision(): SandboxDecision {
  decided ??= decideSandbox(sandboxFacts());
  return decided;
}

type Logger = { info(...a: unknown[]): void; warn(...a: unknown[]): void };

/**
 * CHROMIUM_SINGLE_PROCESS: true → each session's Chromium is one process; false → Chromium's own
 * process model; "auto" (the default) → one process exactly where the sandbox cannot run. A
 * renderer of its own process is worth its memory (~60 MB per session) for the sandbox around it;
 * unsandboxed it runs with the browser's own rights either way, and with one browser per session a
 * crash ends that one session in both models.
 */
export type ProcessModel = boolean | "auto";

/** Whether a session's Chromium runs as one process under `setting` and this sandbox decision. */
export function runsSingleProcess(
  setting: ProcessModel | undefined,
  decision: SandboxDecision = sandboxDecision(),
): boolean {
  return setting === undefined || setting === "auto" ? !decision.sandbox : setting;
}

/** Logs the decision on the first launch of this process (a warning when the sandbox is off). */
export function logSandboxDecision(logger: Logger = console, setting: ProcessModel = "auto"): void {
  if (logged) return;
  logged = true;
  const { sandbox, reason } = sandboxDecision();
  if (setting === true)
    logger.warn("Chromium runs as one process, without its sandbox (CHROMIUM_SINGLE_PROCESS=1)");
  else if (sandbox) logger.info(`Chromium runs sandboxed: ${reason}`);
  else if (setting === false) logger.warn(`Chromium runs without its sandbox (--no-sandbox): ${reason}`);
  else
    logger.warn(
      `Chromium runs without its sandbox, as one process per session: ${reason} ` +
        "(CHROMIUM_SINGLE_PROCESS=0 keeps its separate processes)",
    );
}

/** `--no-sandbox` when the sandbox cannot run here, else nothing. */
export function sandboxFlags(): string[] {
  return sandboxDecision().sandbox ? [] : ["--no-sandbox"];
}

/** Flags every Chromium of ours needs here: no GPU, no /dev/shm (small in containers), no background
 * traffic to Google's hosts (ENVIRONMENT.md); and the sandbox where it can run. Tests that launch a
 * browser of their own use them too. */
export function chromiumBaseFlags(): string[] {
  return [
    ...sandboxFlags(),
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
  ];
}

/**
 * What a session's Chromium does not need, measured with `npm run bench -- density` (10 sessions on the
 * stand-in): no crash reporting (Chromium 156 still starts its two crashpad handler processes per
 * session, about 1.5 MB PSS together), no spare renderer kept warm, one renderer, no SwiftShader, and
 * none of the features a headless page for one site never uses. One --disable-features list: Chromium
 * keeps only the last one given.
 *
 * --disable-software-rasterizer: with --disable-gpu Chromium still brings up SwiftShader (software GL
 * for WebGL) in its GPU code; the page never uses WebGL (the QR is a 2D canvas, drawn in software
 * either way). Measured, 10 sessions: 115.6 -> 105.5 MB PSS per session single-process, 175.6 -> 165.0
 * MB multi-process (about 10 MB each).
 */
const LEAN_FLAGS = [
  "--disable-crash-reporter",
  "--disable-breakpad",
  "--renderer-process-limit=1",
  "--disable-software-rasterizer",
  "--disable-features=" +
    [
      "SpareRendererForSitePerProcess",
      "BackForwardCache",
      "MediaRouter",
      "OptimizationHints",
      "Translate",
      "AudioServiceOutOfProcess",
    ].join(","),
];

/**
 * One process (CHROMIUM_SINGLE_PROCESS, see ProcessModel): the browser, its renderer, GPU and network
 * together. About a third less memory per session than the multi-process model (105.6 against 165.2
 * MB PSS, density bench), and nothing shared between sessions is lost (each session is a browser of
 * its own, so one crash still ends one session, which restarts). It gives up the renderer sandbox: a
 * renderer in the browser process cannot be sandboxed.
 */
const SINGLE_PROCESS_FLAGS = ["--single-process", "--no-zygote", "--no-sandbox"];

/** A session's Chromium: the base flags, headless, lean, with DevTools on the pipe (fds 3 and 4) only. */
export function sessionFlags(opts: { singleProcess?: boolean } = {}): string[] {
  const flags = [
    "--headless",
    ...chromiumBaseFlags(),
    "--disable-extensions",
    "--disable-blink-features=AutomationControlled",
    "--mute-audio",
    "--remote-debugging-pipe",
    ...LEAN_FLAGS,
  ];
  if (opts.singleProcess) for (const f of SINGLE_PROCESS_FLAGS) if (!flags.includes(f)) flags.push(f);
  return flags;
}
