/**
 * Cross-site request checks for state-changing web API calls (CSRF defence in depth; the API
 * has no cookies, but a page on another site could still use a visitor's browser to post to a
 * proxy only that browser can reach, with that browser's IP address for the rate limits).
 *
 * A call passes when it carries no `Origin` (tsh, curl and other non-browser clients send
 * none), or when its `Origin` is `https://` and names one of these authorities:
 * - a configured public address of the proxy (`public_addr`): the operator wrote it, so it is
 *   trustworthy, and it also covers a load balancer that rewrites `Host`;
 * - the authority the request was sent to (its `Host` header). Any client can write `Host`, but
 *   a browser sets it to the host of the URL it fetches, and a page on another site cannot
 *   change it: a cross-site request carries the proxy's name in `Host` and the other site in
 *   `Origin`. The one way to make both name the attacker's site is DNS rebinding, and then the
 *   browser checks the proxy's certificate against the attacker's name and refuses it.
 * `Sec-Fetch-Site: cross-site` is refused whatever the Origin says. The host is only compared,
 * never copied into a page or an answer.
 */

/** `host:port` in lower case, IPv6 in brackets; undefined when `text` is not an authority. */
export function normalizeAuthority(text: string, defaultPort: number): string | undefined {
  const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?$/.exec(text.trim());
  if (m === null) return undefined;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return `${m[1]!.toLowerCase().replace(/\.$/, "")}:${port}`;
}

/** The authority of an `Origin` header value (`https://host[:port]`); undefined otherwise. */
export function originAuthority(origin: string): string | undefined {
  const m = /^https:\/\/([^/?#@]+)$/i.exec(origin.trim());
  return m === null ? undefined : normalizeAuthority(m[1]!, 443);
}

/** What {@link checkRequestOrigin} looks at. */
export interface OriginCheckInput {
  /** The `Origin` header, when sent. */
  origin: string | undefined;
  /** The `Sec-Fetch-Site` header, when sent. */
  secFetchSite: string | undefined;
  /** The `Host` header, when sent. */
  host: string | undefined;
  /** The proxy's configured public addresses (`host:port`). */
  publicAddrs: readonly string[];
}

/**
 * Undefined when the request may change state; otherwise why not, in words that name no value
 * the client sent (the answer is built from it).
 */
export function checkRequestOrigin(input: OriginCheckInput): string | undefined {
  if (input.secFetchSite?.trim().toLowerCase() === "cross-site") {
    return "the browser marked the request as cross-site (Sec-Fetch-Site)";
  }
  if (input.origin === undefined) return undefined;
  const from = originAuthority(input.origin);
  if (from === undefined) {
    return "its Origin header is not an https:// origin of this proxy";
  }
  const allowed = new Set<string>();
  for (const addr of input.publicAddrs) {
    const a = normalizeAuthority(addr, 443);
    if (a !== undefined) allowed.add(a);
  }
  const own = input.host === undefined ? undefined : normalizeAuthority(input.host, 443);
  if (own !== undefined) allowed.add(own);
  if (allowed.has(from)) return undefined;
  return "its Origin header names another site than this proxy";
}
