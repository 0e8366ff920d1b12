import assert from "node:assert/strict";
import { isKind } from "../errors/mod.ts";
import { startFakeWebProxy, testCluster, webCertificate } from "./_testing.ts";
import { fetchHostCas } from "./host_ca.ts";

type TestClusterCas = Awaited<ReturnType<typeof testCluster>>;

/** A fake proxy of cluster c1 whose `/webapi/hostca` lists `hostCas(cluster)`. */
async function setup(hostCas: (c: TestClusterCas) => { sshKeys: string[]; tlsCerts: string[] }) {
  const cluster = await testCluster("c1");
  const tls = await webCertificate();
  const proxy = await startFakeWebProxy({
    cluster,
    tls,
    password: "pw",
    hostCas: () => hostCas(cluster),
  });
  const current = { hostCaKeys: [cluster.hostCaLine], hostCaTlsCerts: [cluster.tlsCa.certPem] };
  const fetch = (trust = { caCertPems: [tls.caPem] }) =>
    fetchHostCas({
      addr: { host: "127.0.0.1", port: proxy.port },
      trust,
      cluster: "c1",
      current,
    });
  return { cluster, proxy, fetch };
}

Deno.test("fetchHostCas() returns both generations while a rotation keeps the trusted ones", async () => {
  const rotated = await testCluster("c1");
  const s = await setup((c) => ({
    sshKeys: [c.hostCaLine, rotated.hostCaLine],
    tlsCerts: [c.tlsCa.certPem, rotated.tlsCa.certPem],
  }));
  await using _proxy = s.proxy;
  const fresh = await s.fetch();
  assert.deepEqual(fresh.hostCaKeys, [s.cluster.hostCaLine, rotated.hostCaLine]);
  assert.equal(fresh.hostCaTlsCerts.length, 2);
});

Deno.test("fetchHostCas() refuses an answer that keeps none of the trusted keys", async () => {
  const stranger = await testCluster("c1");
  const s = await setup(() => ({
    sshKeys: [stranger.hostCaLine],
    tlsCerts: [stranger.tlsCa.certPem],
  }));
  await using _proxy = s.proxy;
  await assert.rejects(
    s.fetch(),
    (err: Error) =>
      isKind(err, "AccessDenied") &&
      /^Cannot refresh the host CAs of cluster c1: the proxy lists none of the host CA keys this profile trusts .*run "tsh login" again$/
        .test(err.message),
  );
});

Deno.test("fetchHostCas() verifies the proxy's web certificate as at login", async () => {
  const s = await setup(() => ({ sshKeys: [], tlsCerts: [] }));
  await using _proxy = s.proxy;
  const other = await webCertificate();
  await assert.rejects(
    s.fetch({ caCertPems: [other.caPem] }),
    (err: Error) => isKind(err, "AccessDenied") && /^Cannot refresh the host CAs/.test(err.message),
  );
  assert.equal(s.proxy.requests.length, 0);
});
