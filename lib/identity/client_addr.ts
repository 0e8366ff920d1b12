/**
 * The client's address, signed by a proxy: a PROXY protocol v2 header whose custom TLV
 * ({@linkcode PP2_TYPE_SIGNED_CLIENT_ADDR}) proves that a proxy of this cluster vouches for the
 * header's addresses. Nodes and auth believe the source address of such a header, and of no
 * other (Teleport does the same with its signed PROXY header).
 *
 * TLV value (SSH wire encoding, RFC 4251 §5):
 *
 *   string   "teleport-signed-client-addr-v1"
 *   string   the proxy's OpenSSH host certificate (host CA signed, `x-teleport-role` Proxy)
 *   uint64   issued at, milliseconds since the epoch
 *   string   nonce, 16 random bytes
 *   string   SSH signature by the certificate's key over the statement below
 *
 * Statement (also SSH wire encoding), binding the header's own addresses:
 *
 *   string "teleport-signed-client-addr-v1", string source IP, uint32 source port,
 *   string destination IP, uint32 destination port, uint64 issued at, string nonce,
 *   string certificate
 *
 * IPs are in canonical text (IPv4 dotted, IPv6 RFC 5952), IPv4-mapped IPv6 written as IPv4.
 */
import {
  parseSshCertificate,
  signSsh,
  SshReader,
  SshWriter,
  verifySshCertificate,
  verifySshSignature,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { AccessDeniedError, BadParameterError, messageOf } from "../errors/mod.ts";
import {
  formatIpBytes,
  formatProxyHeaderV2,
  parseIp,
  type ProxyEndpoint,
  type ProxyHeader,
  unmapIp,
} from "../net/mod.ts";

/** Custom TLV type (PP2_TYPE_MIN_CUSTOM..MAX_CUSTOM, HAProxy spec §2.2.7) of the statement. */
export const PP2_TYPE_SIGNED_CLIENT_ADDR = 0xe4;

const DOMAIN = "teleport-signed-client-addr-v1";
const NONCE_BYTES = 16;
/** Largest issued-at difference from the verifier's clock, either way. */
const MAX_SKEW_MS = 60_000;
/** Nonces remembered for replay checks; beyond this, new headers are refused until some expire. */
const MAX_REMEMBERED_NONCES = 100_000;

/** A proxy's signing identity: its SSH host key and the host certificate for it. */
export interface ProxySigner {
  privateKey: CryptoKey;
  publicKeyBlob: Uint8Array;
  /** OpenSSH host certificate blob (role Proxy). */
  certificate: Uint8Array;
}

/** Canonical text of an IP for the statement; throws BadParameterError when it is not an IP. */
function canonicalIp(addr: string, what: string): string {
  const b = parseIp(unmapIp(addr));
  if (b === undefined) {
    throw new BadParameterError(
      `Cannot sign client address: ${what} ${JSON.stringify(addr)} is not an IP address`,
    );
  }
  return unmapIp(formatIpBytes(b));
}

function statement(
  src: ProxyEndpoint,
  dst: ProxyEndpoint,
  issuedAt: bigint,
  nonce: Uint8Array,
  cert: Uint8Array,
): Uint8Array {
  return new SshWriter()
    .string(DOMAIN)
    .string(canonicalIp(src.addr, "source"))
    .uint32(src.port)
    .string(canonicalIp(dst.addr, "destination"))
    .uint32(dst.port)
    .uint64(issuedAt)
    .string(nonce)
    .string(cert)
    .bytes();
}

/** Inputs of {@linkcode signClientAddrHeader}. */
export interface SignClientAddrOptions {
  signer: ProxySigner;
  /** The client, as the proxy sees it. */
  source: ProxyEndpoint;
  /** The server the proxy connected to for the client (the verifier's own address). */
  destination: ProxyEndpoint;
  now: Date;
}

/**
 * A PROXY v2 header for `source` → `destination` carrying the signed statement; write it first
 * on the connection the proxy opened for the client.
 */
export async function signClientAddrHeader(o: SignClientAddrOptions): Promise<Uint8Array> {
  const issuedAt = BigInt(o.now.getTime());
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const signed = statement(o.source, o.destination, issuedAt, nonce, o.signer.certificate);
  const signature = await signSsh(o.signer.privateKey, signed);
  const value = new SshWriter()
    .string(DOMAIN)
    .string(o.signer.certificate)
    .uint64(issuedAt)
    .string(nonce)
    .string(signature)
    .bytes();
  return formatProxyHeaderV2({
    source: { addr: unmapIp(o.source.addr), port: o.source.port },
    destination: { addr: unmapIp(o.destination.addr), port: o.destination.port },
    tlvs: [{ type: PP2_TYPE_SIGNED_CLIENT_ADDR, value }],
  });
}

/** Options of {@linkcode ClientAddrVerifier}. */
export interface ClientAddrVerifierOptions {
  /** The host CA's SSH public key blobs (they change on rotation). */
  hostCaKeys: () => Uint8Array[];
  /** The cluster whose proxies are trusted (`x-teleport-authority`). */
  clusterName: string;
  clock: Clock;
  /**
   * Addresses of TCP load balancers in front of this listener (e.g. auth servers behind
   * haproxy on 3025): a proxy that dialled one of them signs the balancer's address, which
   * is accepted besides the socket's own local address. Called for each header whose
   * destination is not the local address.
   *
   * @default {none: only the local address}
   */
  frontAddrs?: () => Promise<ProxyEndpoint[]>;
}

/**
 * Verifies signed client address headers: host certificate signed by a trusted host CA key,
 * role Proxy, this cluster, valid now; signature by the certificate's key over the header's
 * addresses; issued within ±60 s of now; destination equal to the verifier's own address (or a
 * load balancer's in front of it, {@link ClientAddrVerifierOptions.frontAddrs}); nonce not seen
 * before. One verifier per listener (it remembers nonces).
 */
export class ClientAddrVerifier {
  readonly #o: ClientAddrVerifierOptions;
  /** nonce (hex) → when it may be forgotten (ms). */
  readonly #seen = new Map<string, number>();

  constructor(o: ClientAddrVerifierOptions) {
    this.#o = o;
  }

  /**
   * Returns the client endpoint `header` vouches for, given the local address of the socket it
   * arrived on. Throws AccessDeniedError naming the failed check.
   */
  async verify(header: ProxyHeader, local: ProxyEndpoint): Promise<ProxyEndpoint> {
    const deny = (why: string): never => {
      throw new AccessDeniedError(`Cannot trust PROXY header: ${why}`);
    };
    if (header.version !== 2) deny("it is a v1 header, which cannot be signed");
    if (header.command !== "proxy" || header.source === undefined) {
      deny("it carries no client address (LOCAL or UNSPEC)");
    }
    const src = header.source!;
    const dst = header.destination!;
    const tlvs = header.tlvs.filter((t) => t.type === PP2_TYPE_SIGNED_CLIENT_ADDR);
    if (tlvs.length !== 1) {
      deny(tlvs.length === 0 ? "it is not signed by a proxy" : "it has more than one signature");
    }
    let fields: {
      certBlob: Uint8Array;
      issuedAt: bigint;
      nonce: Uint8Array;
      signature: Uint8Array;
    };
    try {
      const r = new SshReader(tlvs[0]!.value, "signed client address");
      if (r.text() !== DOMAIN) throw new Error("unknown statement format");
      fields = {
        certBlob: r.string(),
        issuedAt: r.uint64(),
        nonce: r.string(),
        signature: r.string(),
      };
      r.end();
    } catch (err) {
      return deny(`the signature does not parse: ${messageOf(err)}`);
    }
    const { certBlob, issuedAt, nonce, signature } = fields;
    if (nonce.length !== NONCE_BYTES) deny("the nonce is not 16 bytes");
    const now = this.#o.clock.now();
    let cert;
    try {
      cert = parseSshCertificate(certBlob);
      await verifySshCertificate(cert, {
        trustedCaKeys: this.#o.hostCaKeys(),
        certType: "host",
        now,
      });
    } catch (err) {
      return deny(`the signer's host certificate is not valid: ${messageOf(err)}`);
    }
    const role = cert.extensions["x-teleport-role"] ?? "";
    if (role.toLowerCase() !== "proxy") {
      deny(
        `the signer ${JSON.stringify(cert.keyId)} is not a proxy (role ${JSON.stringify(role)})`,
      );
    }
    const authority = cert.extensions["x-teleport-authority"] ?? "";
    if (authority !== this.#o.clusterName) {
      deny(`the signer is a proxy of cluster ${JSON.stringify(authority)}`);
    }
    const signed = statement(src, dst, issuedAt, nonce, certBlob);
    if (!await verifySshSignature(cert.publicKeyBlob, signature, signed)) {
      deny(`the signature of proxy ${JSON.stringify(cert.keyId)} is invalid`);
    }
    const skew = Number(issuedAt) - now.getTime();
    if (Math.abs(skew) > MAX_SKEW_MS) {
      deny(`it was issued ${Math.round(skew / 1000)} s from now (at most ±60 s allowed)`);
    }
    const want = { addr: unmapIp(local.addr), port: local.port };
    const same = (e: ProxyEndpoint) => unmapIp(e.addr) === unmapIp(dst.addr) && e.port === dst.port;
    if (!same(want)) {
      const fronts = this.#o.frontAddrs === undefined ? [] : await this.#o.frontAddrs();
      if (!fronts.some(same)) {
        deny(
          `it is for ${dst.addr} port ${dst.port}, and this connection arrived at ${want.addr} port ${want.port}` +
            (this.#o.frontAddrs === undefined
              ? ""
              : fronts.length === 0
              ? " (behind a load balancer, list its address in auth_service.public_addr)"
              : ` or through ${fronts.map((f) => `${f.addr} port ${f.port}`).join(", ")}`),
        );
      }
    }
    this.#remember(nonce, now.getTime(), deny);
    return { addr: unmapIp(src.addr), port: src.port };
  }

  #remember(nonce: Uint8Array, now: number, deny: (why: string) => never): void {
    const key = Array.from(nonce, (b) => b.toString(16).padStart(2, "0")).join("");
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) deny("it was used before (replayed)");
    if (this.#seen.size >= MAX_REMEMBERED_NONCES) {
      for (const [k, t] of this.#seen) if (t <= now) this.#seen.delete(k);
      if (this.#seen.size >= MAX_REMEMBERED_NONCES) {
        deny("too many signed headers in the last two minutes to check them for replay");
      }
    }
    // A header is accepted at most 60 s after issue, so its nonce matters for 2 × 60 s.
    this.#seen.set(key, now + 2 * MAX_SKEW_MS);
  }
}
