// The event log route (accounts.events; src/store/events-repo.ts).
import { CURSOR_PATTERN } from "../../store/events-repo.ts";
import type { RouteSpec } from "../route-spec.ts";

export const EVENT_ROUTES: RouteSpec[] = [
  {
    id: "listEvents",
    method: "GET",
    path: "/events",
    mount: "/api/v1",
    action: "accounts.events",
    params: {
      after: {
        in: "query",
        type: "string",
        pattern: CURSOR_PATTERN,
        optional: true,
        description: "Cursor of the last event already seen (`0`, the default: from the oldest kept)",
      },
      // A string here: query values reach the gateway's check unconverted (accounts.events converts).
      limit: {
        in: "query",
        type: "string",
        pattern: /^(?:[1-9][0-9]{0,2}|1000)$/,
        optional: true,
        description: "Events per page, 1–1000 (default 100)",
      },
    },
    auth: "workspace",
    summary: "The workspace's account events after a cursor, oldest first: `{items, nextCursor}`",
    tag: "accounts",
  },
];
