// URLs for logs: NATS_URL and MONGO_URL may carry credentials (user:password@ or a NATS token@).

/** `url` (or a comma list of URLs) with every `userinfo@` part replaced by `***@`. */
export function redactUrl(url: string): string {
  return url.replace(/([a-z][\w+.-]*:\/\/)[^@/,?#]*@/gi, "$1***@");
}
