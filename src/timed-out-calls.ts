// Moleculer's ContextTracker (`tracking`, which a graceful stop waits on) forgets a remote call's context
// when the call's inner promise settles. A call that times out never settles there: the Timeout
// middleware rejects the caller's promise and the ErrorHandler drops the pending request, so the answer
// that would have settled it is never matched. Each timed-out call's context (with its params: a
// send's media) then stayed in the broker's list until the broker stopped, and the stop waited the whole
// shutdownTimeout for it. Listed after Moleculer's middlewares (so it sees what the caller sees), this
// forgets the context of a remote call that failed.
import type { ActionHandler, Context, Middleware } from "moleculer";

function untrack(ctx: Context): void {
  const tracked = (ctx.broker as unknown as { _trackedContexts?: Context[] })._trackedContexts;
  const at = tracked?.indexOf(ctx) ?? -1;
  if (at !== -1) tracked!.splice(at, 1);
}

export function untrackFailedRemoteCalls(): Middleware {
  return {
    name: "UntrackFailedRemoteCalls",
    remoteAction(next: ActionHandler) {
      const run = next as unknown as (ctx: Context) => Promise<unknown>;
      return function untrackedOnFailure(ctx: Context) {
        return run(ctx).catch((err: unknown) => {
          untrack(ctx);
          throw err;
        });
      } as ActionHandler;
    },
  } as Middleware;
}
