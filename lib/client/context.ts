/** Opening a stored profile for a command: profile, keys, web trust and the cluster API. */
import type { Clock } from "../clock/mod.ts";
import { RealClock } from "../clock/mod.ts";
import { parseSshCertificate } from "../ca/mod.ts";
import { AccessDeniedError, BadParameterError, NotFoundError } from "../errors/mod.ts";
import { type ClusterApi, openClusterApi, withHostCaRefresh } from "./cluster.ts";
import { fetchHostCas } from "./host_ca.ts";
import { DEFAULT_LIST_CACHE_MAX_AGE_MS, withListCache } from "./list_cache.ts";
import { type ClientContext, webTrustOf } from "./dial.ts";
import type { Profile, ProfileStore } from "./profile.ts";

/** Options for {@link openClientContext}. */
export interface OpenClientContextOptions {
  /** Profile name (proxy host); default: the current profile. */
  name?: string;
  /** This command runs with `--insecure`. */
  insecure?: boolean;
  /** Allow an expired profile (for `tsh status`-like readers). @default {false} */
  allowExpired?: boolean;
  /** @default {new RealClock()} */
  clock?: Clock;
  /** Builds the cluster API (tests inject a fake). @default {openClusterApi} */
  openApi?: (
    profile: Profile,
    keys: ClientContext["keys"],
    trust: ClientContext["trust"],
  ) => ClusterApi;
  /** Time allowed for each connection and login, in ms. @default {30000} */
  timeoutMs?: number;
  /**
   * How old a cached node or proxy list may be when dialling (list_cache.ts); 0 always asks
   * the cluster. @default {DEFAULT_LIST_CACHE_MAX_AGE_MS}
   */
  listMaxAgeMs?: number;
}

/**
 * Loads a profile ready to dial. NotFoundError "Not logged in" when there is no profile;
 * AccessDeniedError when its certificates expired.
 */
export async function openClientContext(
  store: ProfileStore,
  o: OpenClientContextOptions = {},
): Promise<ClientContext> {
  const profile = await store.load(o.name);
  if (profile === undefined) {
    throw new NotFoundError(
      o.name === undefined
        ? 'Not logged in; run "tsh login --proxy=HOST --user=NAME"'
        : `Not logged in to ${o.name}; run "tsh login --proxy=${o.name}"`,
    );
  }
  const clock = o.clock ?? new RealClock();
  const keys = await store.loadKeys(profile);
  // The certificate itself is the authority on expiry (the profile file only repeats it).
  const cert = parseSshCertificate(keys.sshCert);
  const end = cert.validBefore === "forever"
    ? profile.validUntil
    : new Date(Math.min(profile.validUntil.getTime(), cert.validBefore.getTime()));
  if (!o.allowExpired && end.getTime() <= clock.now().getTime()) {
    throw new AccessDeniedError(
      `Cannot use the profile of ${profile.name}: your certificates expired at ` +
        `${end.toISOString()}; run "tsh login" again`,
    );
  }
  const listMaxAgeMs = o.listMaxAgeMs ?? DEFAULT_LIST_CACHE_MAX_AGE_MS;
  if (!Number.isFinite(listMaxAgeMs) || listMaxAgeMs < 0) {
    throw new BadParameterError(
      `Cannot open the profile of ${profile.name}: listMaxAgeMs must be >= 0, got ${listMaxAgeMs}`,
    );
  }
  const trust = webTrustOf(profile, { insecure: o.insecure === true });
  const api = withListCache((o.openApi ?? openClusterApi)(profile, keys, trust), {
    path: store.paths(profile.name, profile.user, profile.cluster).listCache,
    sshCert: keys.sshCert,
    clock,
  });
  // At most one refresh per command; every caller shares its outcome.
  let refreshing: Promise<boolean> | undefined;
  const refreshHostCas = () =>
    refreshing ??= (async () => {
      const fresh = await fetchHostCas({
        addr: profile.webProxyAddr,
        trust,
        cluster: profile.cluster,
        current: keys,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      });
      if (
        sameSet(fresh.hostCaKeys, keys.hostCaKeys) &&
        sameSet(fresh.hostCaTlsCerts.map(pemBody), keys.hostCaTlsCerts.map(pemBody))
      ) {
        return false;
      }
      await store.saveHostCas(profile, fresh);
      keys.hostCaKeys = fresh.hostCaKeys;
      keys.hostCaTlsCerts = fresh.hostCaTlsCerts;
      api.setHostCaCerts?.(fresh.hostCaTlsCerts);
      return true;
    })();
  return {
    profile,
    keys,
    trust,
    api: withHostCaRefresh(api, refreshHostCas),
    clock,
    listMaxAgeMs,
    refreshHostCas,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  };
}

const sameSet = (a: string[], b: string[]) =>
  a.length === b.length && a.every((x) => b.includes(x));

/** A PEM's base64 body, for comparisons that ignore line wrapping. */
const pemBody = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, "");
