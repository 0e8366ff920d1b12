import assert from "node:assert/strict";
import { generateSshKeyPair } from "../ca/mod.ts";
import { isKind } from "../errors/mod.ts";
import { testCluster } from "./_testing.ts";
import { verifyHostCertificate, type VerifyHostCertificateOptions } from "./host_cert.ts";

async function setup() {
  const cluster = await testCluster("c1");
  const key = await generateSshKeyPair("ed25519");
  const uuid = "5b3e0a52-6a4a-4f3a-9a43-0d0c2f6a1c11";
  const cert = await cluster.hostCert({ key, principals: [uuid, "web1"], role: "Node" });
  const base: VerifyHostCertificateOptions = {
    hostCert: cert,
    presentedKey: key.publicKeyBlob,
    trustedCaKeys: [cluster.hostCaLine],
    clusterName: "c1",
    role: "Node",
    principal: uuid,
    now: new Date(),
    hostLabel: `node "web1" (${uuid})`,
  };
  return { cluster, key, uuid, base };
}

Deno.test("verifyHostCertificate() accepts the node's own certificate and key", async () => {
  const { base, uuid } = await setup();
  const cert = await verifyHostCertificate(base);
  assert.ok(cert.principals.includes(uuid));
});

Deno.test("verifyHostCertificate() refuses a certificate from another CA", async () => {
  const { base, key, uuid } = await setup();
  const other = await testCluster("c1");
  const hostCert = await other.hostCert({ key, principals: [uuid], role: "Node" });
  await assert.rejects(
    verifyHostCertificate({ ...base, hostCert }),
    (err: Error) =>
      isKind(err, "AccessDenied") &&
      /^Cannot trust the SSH host key of node "web1" \(.*\): certificate is not signed by a trusted authority; if the cluster's CAs were rotated, run "tsh login" again$/
        .test(err.message),
  );
});

Deno.test("verifyHostCertificate() refuses a certificate without the node's UUID", async () => {
  const { base } = await setup();
  await assert.rejects(
    verifyHostCertificate({ ...base, principal: "another-uuid" }),
    /principal "another-uuid" is not in the certificate/,
  );
});

Deno.test("verifyHostCertificate() refuses a server whose key differs from its certificate", async () => {
  const { base } = await setup();
  const imposter = await generateSshKeyPair("ed25519");
  await assert.rejects(
    verifyHostCertificate({ ...base, presentedKey: imposter.publicKeyBlob }),
    /the server presented key SHA256:.*, but the certificate is for SHA256:.*man-in-the-middle/,
  );
});

Deno.test("verifyHostCertificate() refuses a missing certificate, wrong role or cluster", async () => {
  const { base, cluster, key, uuid } = await setup();
  await assert.rejects(
    verifyHostCertificate({ ...base, hostCert: undefined }),
    /the cluster holds no host certificate for it; .*restart it/,
  );
  await assert.rejects(verifyHostCertificate({ ...base, role: "Proxy" }), /role "Node", not Proxy/);
  const foreign = await cluster.hostCert({ key, principals: [uuid], role: "Node", cluster: "c2" });
  await assert.rejects(
    verifyHostCertificate({ ...base, hostCert: foreign }),
    /certificate is for cluster "c2", not c1/,
  );
  await assert.rejects(
    verifyHostCertificate({ ...base, hostCert: "ssh-ed25519 AAAA" }),
    /host certificate does not parse/,
  );
});

Deno.test("verifyHostCertificate() refreshes the trusted keys once when a rotated CA signed the certificate", async () => {
  const { base, key, uuid, cluster } = await setup();
  const rotated = await testCluster("c1");
  const hostCert = await rotated.hostCert({ key, principals: [uuid], role: "Node" });
  let calls = 0;
  const refreshTrustedCaKeys = () => {
    calls++;
    return Promise.resolve([cluster.hostCaLine, rotated.hostCaLine]);
  };
  const cert = await verifyHostCertificate({ ...base, hostCert, refreshTrustedCaKeys });
  assert.ok(cert.principals.includes(uuid));
  assert.equal(calls, 1);
  // A certificate of a trusted key needs no refresh.
  await verifyHostCertificate({ ...base, refreshTrustedCaKeys });
  assert.equal(calls, 1);
});

Deno.test("verifyHostCertificate() still refuses a host no refreshed key certifies, and says why", async () => {
  const { base, key, uuid, cluster } = await setup();
  const stranger = await testCluster("c1");
  const hostCert = await stranger.hostCert({ key, principals: [uuid], role: "Node" });
  await assert.rejects(
    verifyHostCertificate({
      ...base,
      hostCert,
      refreshTrustedCaKeys: () => Promise.resolve([cluster.hostCaLine]),
    }),
    (err: Error) =>
      isKind(err, "AccessDenied") &&
      /not signed by a trusted authority \(also after refreshing the cluster's host CA keys\); tell your administrator/
        .test(err.message),
  );
  await assert.rejects(
    verifyHostCertificate({
      ...base,
      hostCert,
      refreshTrustedCaKeys: () => Promise.reject(new Error("the proxy is unreachable")),
    }),
    (err: Error) =>
      isKind(err, "AccessDenied") &&
      /signed by host CA key SHA256:\S+, which this profile does not trust, and the trusted keys cannot be refreshed \(the proxy is unreachable\); run "tsh login" again/
        .test(err.message),
  );
  // Unchanged keys (undefined): the usual refusal.
  await assert.rejects(
    verifyHostCertificate({
      ...base,
      hostCert,
      refreshTrustedCaKeys: () => Promise.resolve(undefined),
    }),
    /not signed by a trusted authority; if the cluster's CAs were rotated/,
  );
});
