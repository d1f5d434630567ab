// Which of Moleculer's own metrics a node keeps. Its built-in "Metrics" middleware times every request
// into a histogram with sliding-window quantiles, tracks active requests, and counts every event and
// every transit and transporter packet, each through a registry lookup and a hash of the labels:
// 13 % of a gateway's CPU in a burst of account creates, by profile, and half the gateway's CPU per
// create in the first-qr bench. By default a node counts requests and request errors only
// (`moleculer_request_total`, `moleculer_request_error_total`, where the action runs);
// MOLECULER_METRICS=full brings back the whole set.
//
// Moleculer adds its middlewares itself unless told not to (`internalMiddlewares: false`); then they
// are listed here, in its order, with "Metrics" swapped for the counters when it is not wanted.
import type { ActionHandler, ActionSchema, Context, Middleware, ServiceBroker } from "moleculer";

export type MoleculerMetrics = "requests" | "full";
export const MOLECULER_METRICS: readonly MoleculerMetrics[] = ["requests", "full"];

/** Moleculer 0.15's internal middlewares, in the order it adds them (service-broker.js). */
export const MOLECULER_INTERNAL_MIDDLEWARES = [
  "ActionHook",
  "Validator",
  "Bulkhead",
  "Cacher",
  "ContextTracker",
  "CircuitBreaker",
  "Timeout",
  "Retry",
  "Fallback",
  "ErrorHandler",
  "Tracing",
  "Metrics",
  "Debounce",
  "Throttle",
] as const;

const TOTAL = "moleculer.request.total";
const ERRORS = "moleculer.request.error.total";

interface Counter {
  increment(labels: Record<string, unknown>): void;
}

/** Counts each request and each failed one where its action runs, under Moleculer's names and labels. */
export function requestCounters(): Middleware {
  let total: Counter | null = null;
  let errors: Counter | null = null;
  return {
    name: "RequestCounters",
    created(broker: ServiceBroker) {
      if (!broker.isMetricsEnabled()) return;
      total = broker.metrics.register({
        name: TOTAL,
        type: "counter",
        labelNames: ["service", "action", "type", "caller"],
        unit: "request",
        description: "Number of requests",
      }) as Counter | null;
      errors = broker.metrics.register({
        name: ERRORS,
        type: "counter",
        labelNames: ["service", "action", "type", "caller", "errorName", "errorCode", "errorType"],
        unit: "request",
        description: "Number of request errors",
      }) as Counter | null;
    },
    localAction(next: ActionHandler, action: ActionSchema) {
      if (!total || !errors) return next;
      const [t, e] = [total, errors];
      const run = next as unknown as (ctx: Context) => Promise<unknown>;
      const service = (action.service as { fullName?: string } | undefined)?.fullName ?? null;
      const name = action.name;
      return function countedRequest(ctx: Context) {
        const labels = { service, action: name, type: "local", caller: ctx.caller };
        t.increment(labels);
        return run(ctx).catch((err: { name?: string; code?: unknown; type?: unknown }) => {
          e.increment({
            ...labels,
            errorName: err?.name ?? null,
            errorCode: err?.code ?? null,
            errorType: err?.type ?? null,
          });
          throw err;
        });
      } as ActionHandler;
    },
  } as Middleware;
}

/** Moleculer's internal middlewares to list after a node's own, with `internalMiddlewares: false`. */
export function moleculerMiddlewares(metrics: MoleculerMetrics): (Middleware | string)[] {
  return MOLECULER_INTERNAL_MIDDLEWARES.map((name) =>
    name === "Metrics" && metrics !== "full" ? requestCounters() : name,
  );
}
