/**
 * Fuzz tests of the web API's body parsers. Bodies arrive as JSON from anyone on the network:
 * every body must give a request or a BadParameterError, and no error may repeat the password,
 * token or OTP code it was given.
 */
import { Buffer } from "node:buffer";
import { expectKinds, fuzz, invariant, type Rng } from "../testing/mod.ts";
import {
  checkUserToken,
  decodeBase64Text,
  parseChangePasswordRequest,
  parseCreateSshCertRequest,
  parseRegisterRequest,
} from "./requests.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const utf8 = new TextDecoder();
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop";
const PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
const SECRET = "Sekr1t-Passw0rd";
const TOKEN = "0123456789abcdef0123456789abcdef";

const corpus = [
  { user: "alice", password: SECRET, otp_token: "123456", ssh_pub_key: b64(SSH_KEY), ttl: 9e10 },
  { user: "alice", password: SECRET, tls_pub_key: b64(PEM), ttl: 0 },
  { user: "alice", password: SECRET, pub_key: b64(SSH_KEY + "\n") },
  {
    token: TOKEN,
    hostID: "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c",
    node_name: "node1",
    role: "Node",
    additional_principals: ["node1.example.com"],
    dns_names: [],
    public_ssh_key: SSH_KEY,
    public_tls_key: b64(PEM),
  },
  { token: TOKEN, password: SECRET, second_factor_token: "654321" },
].map((o) => enc(JSON.stringify(o)));

const FIELDS = [
  "user",
  "password",
  "otp_token",
  "ssh_pub_key",
  "tls_pub_key",
  "pub_key",
  "ttl",
  "headless_id",
  "token",
  "hostID",
  "node_name",
  "role",
  "additional_principals",
  "dns_names",
  "public_ssh_key",
  "public_tls_key",
  "second_factor_token",
];

function value(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 6 : 8)) {
    case 0:
      return rng.pick([null, true, false, 0, -1, 1.5, 1e21, 2 ** 63, -0]);
    case 1:
      return rng.pick([SECRET, TOKEN, "", " ", "AAAA", "====", b64(SSH_KEY), b64(PEM), PEM]);
    case 2:
      return b64(utf8.decode(rng.bytes(rng.int(30))));
    case 3:
      return Buffer.from(rng.bytes(rng.int(30))).toString("base64");
    case 4:
      return utf8.decode(rng.bytes(rng.int(20)));
    case 5:
      return SSH_KEY.slice(0, rng.int(SSH_KEY.length + 1));
    case 6:
      return Array.from({ length: rng.int(4) }, () => value(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--) o[rng.pick(FIELDS)] = value(rng, depth + 1);
      return o;
    }
  }
}

function body(rng: Rng): Uint8Array {
  const o: Record<string, unknown> = {};
  for (const f of FIELDS) if (rng.chance(0.4)) o[f] = value(rng);
  if (rng.chance(0.7)) o.password = SECRET;
  return enc(JSON.stringify(o));
}

/** No error message may repeat a secret from the body. */
function checkNoSecret(err: unknown, parsed: unknown) {
  const message = (err as Error).message;
  invariant(!message.includes(SECRET), `error repeats the password: ${message}`);
  invariant(!message.includes(TOKEN), `error repeats the token: ${message}`);
  if (typeof parsed === "object" && parsed !== null) {
    for (const f of ["password", "otp_token", "token", "second_factor_token"]) {
      const v = (parsed as Record<string, unknown>)[f];
      if (typeof v === "string" && v.length >= 6) {
        invariant(!message.includes(v), `error repeats ${f}: ${message}`);
      }
    }
  }
}

Deno.test("web request parsers give a request or BadParameter for 100k bodies, never echoing secrets", async () => {
  await fuzz({
    name: "web request parsers",
    corpus,
    dictionary: ['"', "{", "}", "[", "]", ":", ",", "null", "=", "+", "/", '"password"', "\\u0000"],
    generators: [body],
    check(input, rng) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(utf8.decode(input));
      } catch {
        return; // readJson answers 400 before any parser runs
      }
      const run = (fn: () => unknown) => {
        try {
          fn();
        } catch (err) {
          expectKinds(["BadParameter"], () => {
            throw err;
          });
          checkNoSecret(err, parsed);
        }
      };
      run(() => parseCreateSshCertRequest(parsed, rng.chance(0.5) ? "127.0.0.1" : undefined));
      run(() => parseRegisterRequest(parsed));
      run(() => parseChangePasswordRequest(parsed));
      if (typeof parsed === "string") {
        run(() => decodeBase64Text(parsed as string, "field", "fuzz"));
        run(() => checkUserToken(parsed as string, "fuzz"));
      }
    },
  });
});
