/**
 * Registers many node identities with a static join token, a few at a time, as the fleet
 * benches (ha.ts, tunnel_scale.ts) need before they start their lightweight nodes or agents.
 */
import { AuthClient } from "../lib/authclient/mod.ts";
import { formatAuthorizedKey, generateTlsKeyPair, sshPublicKeyBlob } from "../lib/ca/mod.ts";

/** One registered node: its host ID, private key and certificates. */
export interface RegisteredNode {
  hostId: string;
  keyPem: string;
  sshCert: string;
  tlsCert: string;
}

/**
 * Registers `n` nodes (`NAME_PREFIX-i`) with auth at 127.0.0.1:`authPort` using `token`,
 * `parallel` at a time. Returns them with the cluster's TLS CA certificates, the SSH CA keys
 * auth handed out, and the time it took.
 */
export async function registerNodes(o: {
  authPort: number;
  token: string;
  n: number;
  parallel: number;
  namePrefix: string;
}): Promise<{
  nodes: RegisteredNode[];
  caCerts: string[];
  sshCaKeys: { host: string[]; user: string[] };
  ms: number;
}> {
  let caCerts: string[];
  {
    using insecure = new AuthClient({
      host: "127.0.0.1",
      port: o.authPort,
      insecureSkipVerify: true,
    });
    caCerts = await insecure.caCerts();
  }
  using client = new AuthClient({ host: "127.0.0.1", port: o.authPort, caCertPems: caCerts });
  const nodes: RegisteredNode[] = new Array(o.n);
  let sshCaKeys = { host: [] as string[], user: [] as string[] };
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(o.parallel, o.n) }, async () => {
    while (next < o.n) {
      const i = next++;
      const key = await generateTlsKeyPair();
      const hostId = crypto.randomUUID();
      const res = await client.register({
        token: o.token,
        hostID: hostId,
        node_name: `${o.namePrefix}-${i}`,
        role: "node",
        additional_principals: [],
        public_ssh_key: formatAuthorizedKey(await sshPublicKeyBlob(key.publicKey)),
        public_tls_key: key.publicKeyPem,
      });
      sshCaKeys = res.ssh_ca_keys;
      nodes[i] = {
        hostId,
        keyPem: key.privateKeyPem,
        sshCert: res.ssh_cert,
        tlsCert: res.tls_cert,
      };
    }
  }));
  return { nodes, caCerts, sshCaKeys, ms: performance.now() - t0 };
}
