import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { BadParameterError } from "../errors/mod.ts";
import {
  checkUserToken,
  decodeBase64Text,
  formatSshLoginResponse,
  formatUserTokenResponse,
  parseChangePasswordRequest,
  parseCreateSshCertRequest,
  parseRegisterRequest,
} from "./requests.ts";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop";
const PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";

Deno.test("parseCreateSshCertRequest() decodes base64 keys and converts ns to ms", () => {
  assert.deepEqual(
    parseCreateSshCertRequest({
      user: "alice",
      password: "pw",
      otp_token: "",
      ssh_pub_key: b64(SSH_KEY + "\n"),
      tls_pub_key: b64(PEM),
      ttl: 90_000_000_000,
      compatibility: "",
      RouteToCluster: "",
    }, "10.0.0.9"),
    {
      user: "alice",
      password: "pw",
      ssh_public_key: SSH_KEY,
      tls_public_key: PEM,
      ttl_ms: 90_000,
      remote_addr: "10.0.0.9",
    },
  );
});

Deno.test("parseCreateSshCertRequest() treats Go's null []byte as absent", () => {
  const req = parseCreateSshCertRequest({
    user: "alice",
    password: "pw",
    ssh_pub_key: null,
    tls_pub_key: b64(PEM),
    ttl: 0,
  }, undefined);
  assert.equal(req.ssh_public_key, undefined);
  assert.equal(req.ttl_ms, 12 * 3_600_000);
  assert.equal("remote_addr" in req, false);
});

Deno.test("parseCreateSshCertRequest() rejects bad input without echoing secrets", () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /must be a JSON object/],
    [{ password: "s3cret" }, /"user" is required/],
    [{ user: " ", password: "s3cret", pub_key: b64(SSH_KEY) }, /"user" is empty/],
    [{ user: "a", password: 5, pub_key: b64(SSH_KEY) }, /"password" must be a string/],
    [{ user: "a", password: "s3cret", pub_key: "***" }, /"pub_key" must be base64/],
    [{ user: "a", password: "s3cret", ssh_pub_key: b64("hello") }, /authorized_keys form/],
    [{ user: "a", password: "s3cret", tls_pub_key: b64("hello") }, /PEM public key/],
    [{ user: "a", password: "s3cret", ssh_pub_key: b64(SSH_KEY), ttl: -1 }, /"ttl"/],
    [{ user: "a", password: "s3cret", ssh_pub_key: b64(SSH_KEY), ttl: "1h" }, /"ttl"/],
    [{ user: "a", password: "s3cret", ssh_pub_key: b64(SSH_KEY), headless_id: "x" }, /headless/],
    [
      { user: "a", password: "s3cret", pub_key: b64(SSH_KEY), tls_pub_key: b64(PEM) },
      /cannot be combined/,
    ],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => parseCreateSshCertRequest(body, "1.2.3.4"), (err: unknown) => {
      assert.ok(err instanceof BadParameterError);
      assert.match(err.message, message);
      assert.match(err.message, /^Cannot log in: /);
      assert.ok(!err.message.includes("s3cret"));
      return true;
    });
  }
});

Deno.test("decodeBase64Text() accepts only padded standard base64 of UTF-8", () => {
  assert.equal(decodeBase64Text(b64("héllo"), "f", "x"), "héllo");
  assert.throws(() => decodeBase64Text("aGk", "f", "x"), /base64/); // unpadded
  assert.throws(() => decodeBase64Text("a-_b", "f", "x"), /base64/); // URL alphabet
  assert.throws(() => decodeBase64Text("//79", "f", "x"), /does not decode to text/);
});

Deno.test("formatSshLoginResponse() base64-encodes every []byte field", () => {
  const res = formatSshLoginResponse("alice", {
    sshCert: "cert line\n",
    tlsCert: "TLS PEM",
    tlsCaCerts: ["CA1", "CA2"],
    hostCaKeys: ["ssh-ed25519 AAAA host"],
    userCaKeys: ["ignored"],
    expires: "x",
  }, "example");
  assert.deepEqual(res, {
    username: "alice",
    cert: b64("cert line\n"),
    tls_cert: b64("TLS PEM"),
    host_signers: [{
      domain_name: "example",
      checking_keys: [b64("ssh-ed25519 AAAA host")],
      tls_certs: [b64("CA1"), b64("CA2")],
    }],
  });
  const sshOnly = formatSshLoginResponse("bob", {
    sshCert: "c",
    tlsCaCerts: [],
    hostCaKeys: [],
    userCaKeys: [],
    expires: "x",
  }, "example");
  assert.equal("tls_cert" in sshOnly, false);
});

Deno.test("parseRegisterRequest() reads our JSON and Teleport's base64 keys", () => {
  const base = {
    token: "0123456789abcdef0123456789abcdef",
    hostID: "h1",
    node_name: "n1",
    role: "Node",
    public_ssh_key: SSH_KEY,
    public_tls_key: PEM,
  };
  assert.deepEqual(parseRegisterRequest(base), base);
  assert.deepEqual(
    parseRegisterRequest({
      ...base,
      public_ssh_key: b64(SSH_KEY),
      public_tls_key: b64(PEM),
      additional_principals: ["a"],
      dns_names: null,
      remote_addr: "spoofed",
    }),
    { ...base, additional_principals: ["a"] },
  );
  assert.throws(() => parseRegisterRequest({ ...base, role: 3 }), /"role" must be a string/);
  assert.throws(
    () => parseRegisterRequest({ ...base, dns_names: [1] }),
    /"dns_names" must be a list of strings/,
  );
  assert.throws(() => parseRegisterRequest({ ...base, token: undefined }), (err: unknown) => {
    assert.match((err as Error).message, /^Cannot join the cluster: field "token" is required$/);
    return true;
  });
});

Deno.test("checkUserToken() accepts 32 lowercase hex characters only", () => {
  checkUserToken("0123456789abcdef0123456789abcdef", "x");
  for (const bad of ["", "0123", "0123456789ABCDEF0123456789ABCDEF", "../../etc/passwd"]) {
    assert.throws(() => checkUserToken(bad, "x"), (err: unknown) => {
      assert.ok(err instanceof BadParameterError);
      assert.ok(bad === "" || !err.message.includes(bad));
      return true;
    });
  }
});

Deno.test("parseChangePasswordRequest() reads token, password and optional code", () => {
  const token = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(parseChangePasswordRequest({ token, password: "p", second_factor_token: "" }), {
    token,
    password: "p",
  });
  assert.deepEqual(
    parseChangePasswordRequest({ token, password: "p", second_factor_token: "123456" }),
    { token, password: "p", second_factor_token: "123456" },
  );
  assert.throws(() => parseChangePasswordRequest({ token, password: ["p"] }), /"password"/);
  assert.throws(() => parseChangePasswordRequest({ token: "abc", password: "p" }), /malformed/);
});

Deno.test("formatUserTokenResponse() flattens the TOTP enrollment", () => {
  assert.deepEqual(
    formatUserTokenResponse({ user: "bob", kind: "reset", expires: "t" }),
    { user: "bob", kind: "reset", expires: "t", second_factor_required: false },
  );
  assert.deepEqual(
    formatUserTokenResponse({
      user: "bob",
      kind: "invite",
      expires: "t",
      totp: { secret: "S", uri: "otpauth://u", required: false },
    }),
    {
      user: "bob",
      kind: "invite",
      expires: "t",
      otpauth_uri: "otpauth://u",
      otp_secret: "S",
      second_factor_required: false,
    },
  );
});

Deno.test("parseCreateSshCertRequest() refuses huge or control-character user names without echoing them", () => {
  for (const user of ["u".repeat(60_000), "alice\nINFO forged line", "bob\u0000"]) {
    assert.throws(
      () => parseCreateSshCertRequest({ user, password: "pw" }, "10.0.0.1"),
      (e: Error) =>
        e instanceof BadParameterError && /at most 255 printable/.test(e.message) &&
        !e.message.includes(user),
    );
  }
});
