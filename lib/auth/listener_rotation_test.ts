import assert from "node:assert/strict";
import { AuthClient } from "../authclient/mod.ts";
import { generateTlsKeyPair } from "../ca/mod.ts";
import { isKind } from "../errors/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { newTestAuth } from "./_testing.ts";
import { startAuthApiServer } from "./listener.ts";

Deno.test("startAuthApiServer() follows a host CA rotation: trusts both generations, serves the new certificate", async () => {
  await using t = await newTestAuth();
  const serverKey = await generateTlsKeyPair();
  const serverCert = () =>
    t.auth.generateHostTlsCert({
      hostId: "auth-host",
      role: "Auth",
      tlsPublicKeyPem: serverKey.publicKeyPem,
      names: ["teleport.cluster.local"],
    });
  await using api = await startAuthApiServer({
    server: t.auth,
    logger: getComponentLogger("auth:test"),
    host: "127.0.0.1",
    port: 0,
    certPem: await serverCert(),
    keyPem: serverKey.privateKeyPem,
  });
  const clientKey = await generateTlsKeyPair();
  const adminCert = () =>
    t.auth.generateHostTlsCert({
      hostId: "admin-host",
      role: "Admin",
      tlsPublicKeyPem: clientKey.publicKeyPem,
    });
  const client = (caCertPems: string[], certPem: string) =>
    new AuthClient({
      host: "127.0.0.1",
      port: api.port,
      caCertPems,
      identity: { certPem, keyPem: clientKey.privateKeyPem },
    });
  /** An Admin client with a certificate of the signing key now, trusting `caCertPems`. */
  const adminClient = async (caCertPems: string[]) => client(caCertPems, await adminCert());
  const oldCas = t.auth.hostCaCertPems();
  const oldCert = await adminCert();
  using before = client(oldCas, oldCert);
  assert.equal((await before.status()).cluster_name, "example");
  // A watch stream opened with the old certificate, which must not outlive the old CA.
  const watchStop = new AbortController();
  const stream = before.watchOnce(["role"], { signal: watchStop.signal });
  assert.equal((await stream.next()).value?.type, "init");

  await t.auth.rotateCertAuthority("host", { phase: "init" });
  await t.auth.rotateCertAuthority("host", { phase: "update_clients" });
  const bothCas = t.auth.hostCaCertPems();
  assert.equal(bothCas.length, 2);
  // A certificate of the new key, which did not exist when the listener started.
  using renewed = await adminClient(bothCas);
  assert.equal((await renewed.status()).cluster_name, "example");
  assert.equal((await before.status()).cluster_name, "example", "the old one still works");

  await t.auth.rotateCertAuthority("host", { phase: "update_servers" });
  api.setCertificate({ certPem: await serverCert(), keyPem: serverKey.privateKeyPem });
  await t.auth.rotateCertAuthority("host", { phase: "standby" });
  const newCas = t.auth.hostCaCertPems();
  // The old CA left the trusted set: the stream ends (its client would reconnect, and be
  // refused with the old certificate).
  const ended = await Promise.race([
    (async () => {
      try {
        for (let r = await stream.next(); !r.done; r = await stream.next()) {
          // events until the stream ends
        }
        return "ended";
      } catch {
        return "ended";
      }
    })(),
    new Promise<string>((r) => setTimeout(() => r("still open after 10 s"), 10_000)),
  ]);
  watchStop.abort();
  assert.equal(ended, "ended");
  using after = await adminClient(newCas);
  assert.equal((await after.status()).cluster_name, "example");
  // Only the new CA is trusted now: the old client certificate is refused, and a client
  // trusting only the old CA refuses the server.
  using stale = client(newCas, oldCert);
  await assert.rejects(stale.status(), (e) => isKind(e, "AccessDenied"));
  using oldTrust = await adminClient(oldCas);
  await assert.rejects(oldTrust.status(), (e) => isKind(e, "ConnectionProblem"));
});
