// How `npm run node` answers a stop signal: the broker stops gracefully (workers hand their sessions
// over), and a signal during the start waits for the start to finish first, so a node never stops
// halfway into taking its lease and workspaces. A second signal while stopping exits at once: the
// operator's way out of a stop that hangs (its sessions then move once its lease expires).

export interface NodeStopOptions {
  nodeId: string;
  stopBroker: () => Promise<void>;
  /** The broker's start while under way, else undefined. */
  starting: () => Promise<unknown> | undefined;
  log: (message: string) => void;
  exit: (code: number) => void;
}

/** The signal handler: `stop(why)` with why naming the signal. */
export function nodeStopper(opts: NodeStopOptions): (why: string) => void {
  let stopping = false;
  return (why) => {
    if (stopping) {
      opts.log(`${why} again: exiting now without finishing the stop (sessions move when the lease expires)`);
      opts.exit(1);
      return;
    }
    stopping = true;
    const start = opts.starting();
    opts.log(`${why}: stopping ${opts.nodeId}${start ? " once its start has finished" : ""}`);
    void (async () => {
      await start?.catch(() => undefined);
      const t0 = Date.now();
      try {
        await opts.stopBroker();
      } catch (err) {
        opts.log(`stop failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        opts.exit(1);
        return;
      }
      opts.log(`stopped in ${Date.now() - t0} ms`);
      opts.exit(0);
    })();
  };
}
