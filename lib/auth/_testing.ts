/** Test helpers: an initialised AuthServer on a memory backend and a fake clock. */
import { MemoryBackend } from "../backend/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import type { RecordingStorage } from "../events/mod.ts";
import type { Identity } from "../identity/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import type { PasswordHasher } from "./password.ts";
import { AuthServer, type StaticToken } from "./server.ts";
import { handleApiRequest } from "./api.ts";

export interface TestAuth extends AsyncDisposable {
  auth: AuthServer;
  clock: FakeClock;
  backend: MemoryBackend;
}

export async function newTestAuth(
  opts: {
    staticTokens?: StaticToken[];
    secondFactor?: string;
    logger?: Logger;
    passwordHasher?: PasswordHasher;
    recordings?: RecordingStorage;
  } = {},
): Promise<TestAuth> {
  const clock = new FakeClock(Date.now());
  const backend = new MemoryBackend({ clock });
  const auth = new AuthServer({
    backend,
    clock,
    logger: opts.logger ?? getComponentLogger("auth:test"),
    clusterName: "example",
    version: "0.0.0-test",
    userTokenTtlMs: 3_600_000,
    ...(opts.staticTokens ? { staticTokens: opts.staticTokens } : {}),
    ...(opts.secondFactor ? { secondFactor: opts.secondFactor } : {}),
    ...(opts.passwordHasher ? { passwordHasher: opts.passwordHasher } : {}),
    ...(opts.recordings ? { recordings: opts.recordings } : {}),
  });
  await auth.init();
  return { auth, clock, backend, [Symbol.asyncDispose]: () => backend.close() };
}

export const ADMIN: Identity = {
  kind: "host",
  username: "h1.example",
  clusterName: "example",
  roles: ["Admin"],
  logins: [],
  traits: {},
};

/** A Proxy host identity (host id `proxyHostId`). */
export function proxyIdentity(proxyHostId = "7d3f4bd0-5a43-4bde-9b1a-3f5a2b1c9e01"): Identity {
  return {
    kind: "host",
    username: `${proxyHostId}.example`,
    clusterName: "example",
    roles: ["Proxy"],
    logins: [],
    traits: {},
  };
}

/** A Node host identity. */
export function nodeIdentity(nodeHostId = "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c"): Identity {
  return { ...proxyIdentity(nodeHostId), roles: ["Node"] };
}

export function userIdentity(name: string, roles: string[]): Identity {
  return { kind: "user", username: name, clusterName: "example", roles, logins: [], traits: {} };
}

/** One auth API call through the router (no sockets), as from 127.0.0.9. */
export function callApi(
  t: TestAuth,
  method: string,
  path: string,
  caller?: Identity,
  body?: unknown,
): ReturnType<typeof handleApiRequest> {
  return handleApiRequest(t.auth, {
    method,
    path,
    ...(caller === undefined ? {} : { caller }),
    ...(body === undefined ? {} : { body }),
    remoteAddr: "127.0.0.9",
  });
}
