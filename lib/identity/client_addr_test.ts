import assert from "node:assert/strict";
import { generateSshKeyPair, signSshCertificate } from "../ca/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { parseProxyHeader, type ProxyHeader } from "../net/mod.ts";
import {
  ClientAddrVerifier,
  PP2_TYPE_SIGNED_CLIENT_ADDR,
  type ProxySigner,
  signClientAddrHeader,
} from "./client_addr.ts";

const CLUSTER = "c1";
const NODE = { addr: "127.0.0.1", port: 3022 };
const CLIENT = { addr: "127.0.0.5", port: 50000 };

async function hostSigner(
  ca: { privateKey: CryptoKey; publicKeyBlob: Uint8Array },
  role: string,
  cluster = CLUSTER,
): Promise<ProxySigner> {
  const key = await generateSshKeyPair("ed25519");
  const cert = await signSshCertificate({
    signer: ca,
    publicKeyBlob: key.publicKeyBlob,
    certType: "host",
    keyId: `${role}-host.${cluster}`,
    principals: [`${role}-host.${cluster}`],
    validAfter: new Date(Date.UTC(2025, 0, 1)),
    validBefore: "forever",
    extensions: { "x-teleport-role": role, "x-teleport-authority": cluster },
  });
  return { privateKey: key.privateKey, publicKeyBlob: key.publicKeyBlob, certificate: cert.blob };
}

function parsed(bytes: Uint8Array): ProxyHeader {
  const r = parseProxyHeader(bytes);
  assert.equal(r.kind, "header");
  return (r as { header: ProxyHeader }).header;
}

async function setup() {
  const ca = await generateSshKeyPair("ed25519");
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const verifier = new ClientAddrVerifier({
    hostCaKeys: () => [ca.publicKeyBlob],
    clusterName: CLUSTER,
    clock,
  });
  const proxy = await hostSigner(ca, "Proxy");
  const sign = (o: Partial<Parameters<typeof signClientAddrHeader>[0]> = {}) =>
    signClientAddrHeader({
      signer: proxy,
      source: CLIENT,
      destination: NODE,
      now: clock.now(),
      ...o,
    });
  return { ca, clock, verifier, proxy, sign };
}

Deno.test("ClientAddrVerifier.verify() returns the client a proxy signed for", async () => {
  const { verifier, sign } = await setup();
  assert.deepEqual(await verifier.verify(parsed(await sign()), NODE), CLIENT);
});

Deno.test("ClientAddrVerifier.verify() accepts IPv4-mapped addresses on either side", async () => {
  const { verifier, sign } = await setup();
  const header = parsed(await sign({ source: { addr: "::ffff:127.0.0.5", port: 1 } }));
  assert.deepEqual(
    await verifier.verify(header, { addr: "::ffff:127.0.0.1", port: 3022 }),
    { addr: "127.0.0.5", port: 1 },
  );
});

Deno.test("ClientAddrVerifier.verify() refuses headers it cannot trust", async (t) => {
  const s = await setup();
  const refuses = async (header: ProxyHeader, why: RegExp, local = NODE) => {
    await assert.rejects(() => s.verifier.verify(header, local), why);
  };
  await t.step("unsigned header", async () => {
    const h = parsed(await s.sign());
    await refuses({ ...h, tlvs: [] }, /not signed by a proxy/);
  });
  await t.step("signed by a node, not a proxy", async () => {
    const node = await hostSigner(s.ca, "Node");
    await refuses(parsed(await s.sign({ signer: node })), /is not a proxy \(role "Node"\)/);
  });
  await t.step("signed by another cluster's host CA", async () => {
    const other = await generateSshKeyPair("ed25519");
    const proxy = await hostSigner(other, "Proxy");
    await refuses(parsed(await s.sign({ signer: proxy })), /not signed by a trusted authority/);
  });
  await t.step("a proxy of another cluster under the same CA key", async () => {
    const proxy = await hostSigner(s.ca, "Proxy", "c2");
    await refuses(parsed(await s.sign({ signer: proxy })), /proxy of cluster "c2"/);
  });
  await t.step("source address changed after signing", async () => {
    const h = parsed(await s.sign());
    await refuses(
      { ...h, source: { addr: "127.0.0.1", port: CLIENT.port } },
      /signature .* invalid/,
    );
  });
  await t.step("for another destination", async () => {
    await refuses(parsed(await s.sign()), /arrived at 127.0.0.1 port 3023/, {
      ...NODE,
      port: 3023,
    });
  });
  await t.step("issued more than a minute away", async () => {
    const old = parsed(await s.sign({ now: new Date(s.clock.now().getTime() - 61_000) }));
    await refuses(old, /issued -61 s from now/);
    const future = parsed(await s.sign({ now: new Date(s.clock.now().getTime() + 61_000) }));
    await refuses(future, /issued 61 s from now/);
  });
  await t.step("replayed", async () => {
    const h = parsed(await s.sign());
    await s.verifier.verify(h, NODE);
    await refuses(h, /replayed/);
  });
  await t.step("garbage in the TLV", async () => {
    const h = parsed(await s.sign());
    await refuses(
      { ...h, tlvs: [{ type: PP2_TYPE_SIGNED_CLIENT_ADDR, value: new Uint8Array([0, 0, 0, 9]) }] },
      /does not parse/,
    );
  });
  await t.step("LOCAL command", async () => {
    await refuses(
      { version: 2, command: "local", family: "unspec", tlvs: [] },
      /no client address/,
    );
  });
});

Deno.test(
  "ClientAddrVerifier.verify() accepts a header for a load balancer in front when frontAddrs lists it",
  async () => {
    const s = await setup();
    const lb = { addr: "127.0.0.9", port: 3025 };
    const behindLb = new ClientAddrVerifier({
      hostCaKeys: () => [s.ca.publicKeyBlob],
      clusterName: CLUSTER,
      clock: s.clock,
      frontAddrs: () => Promise.resolve([lb]),
    });
    assert.deepEqual(
      await behindLb.verify(parsed(await s.sign({ destination: lb })), NODE),
      CLIENT,
    );
    // Only the balancer's own port, and only with frontAddrs: the hint names the setting.
    await assert.rejects(
      async () =>
        behindLb.verify(parsed(await s.sign({ destination: { ...lb, port: 3080 } })), NODE),
      /port 3080, .* or through 127\.0\.0\.9 port 3025/,
    );
    const noFronts = new ClientAddrVerifier({
      hostCaKeys: () => [s.ca.publicKeyBlob],
      clusterName: CLUSTER,
      clock: s.clock,
      frontAddrs: () => Promise.resolve([]),
    });
    await assert.rejects(
      async () => noFronts.verify(parsed(await s.sign({ destination: lb })), NODE),
      /list its address in auth_service\.public_addr/,
    );
    // A verifier without frontAddrs (a node's) gives no auth hint.
    await assert.rejects(
      async () => s.verifier.verify(parsed(await s.sign({ destination: lb })), NODE),
      (e) => /arrived at 127\.0\.0\.1 port 3022$/.test(String((e as Error).message)),
    );
  },
);
