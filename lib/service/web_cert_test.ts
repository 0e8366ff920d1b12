import assert from "node:assert/strict";
import { testLogger } from "../log/mod.ts";
import { startMultiplexer } from "../multiplex/mod.ts";
import { loadWebKeyPairs, WebKeyPairReloader } from "./web_cert.ts";
import { RealClock } from "../clock/mod.ts";

async function openssl(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`openssl ${args[0]} failed: ${text}`);
  return text;
}

/**
 * A certbot-like layout made by openssl: a root, an intermediate it signed, and a leaf for
 * `names` signed by the intermediate; `<name>/fullchain.pem` (leaf + intermediate) and
 * `<name>/privkey.pem`.
 */
async function makePki(dir: string): Promise<(name: string, names: string[]) => Promise<void>> {
  const ext = `${dir}/ext.cnf`;
  await Deno.writeTextFile(
    ext,
    "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n" +
      "[leaf]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  const key = (f: string) =>
    openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f], dir);
  await key("root.key");
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    "root.key",
    "-subj",
    "/CN=Test Root",
    "-days",
    "2",
    "-out",
    "root.pem",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await key("int.key");
  await openssl([
    "req",
    "-new",
    "-key",
    "int.key",
    "-subj",
    "/CN=Test Intermediate",
    "-out",
    "int.csr",
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    "int.csr",
    "-CA",
    "root.pem",
    "-CAkey",
    "root.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-extensions",
    "ca",
    "-out",
    "int.pem",
  ], dir);
  let serial = 0;
  return async (name: string, names: string[]) => {
    await Deno.mkdir(`${dir}/${name}`, { recursive: true });
    const leafExt = `${dir}/${name}.cnf`;
    await Deno.writeTextFile(
      leafExt,
      `[leaf]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${
        names.map((n) => `DNS:${n}`).join(",")
      }\n`,
    );
    await key(`${name}/privkey.pem`);
    await openssl([
      "req",
      "-new",
      "-key",
      `${name}/privkey.pem`,
      "-subj",
      `/CN=${name}`,
      "-out",
      `${name}.csr`,
    ], dir);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "int.pem",
      "-CAkey",
      "int.key",
      "-set_serial",
      String(++serial + 100),
      "-days",
      "1",
      "-extfile",
      leafExt,
      "-extensions",
      "leaf",
      "-out",
      `${name}/cert.pem`,
    ], dir);
    const fullchain = (await Deno.readTextFile(`${dir}/${name}/cert.pem`)) +
      (await Deno.readTextFile(`${dir}/int.pem`));
    await Deno.writeTextFile(`${dir}/${name}/fullchain.pem`, fullchain);
  };
}

/** `openssl s_client` verifying against the root only, by name. */
async function verify(port: number, dir: string, servername: string): Promise<string> {
  const out = await new Deno.Command("openssl", {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      servername,
      "-verify_hostname",
      servername,
      "-CAfile",
      `${dir}/root.pem`,
      "-verify_return_error",
      "-showcerts",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

const subjectOf = (text: string) => /subject=CN ?= ?([^\n]+)/.exec(text)?.[1]?.trim();

Deno.test("loadWebKeyPairs() serves certbot fullchains by SNI that verify against the root", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-webcert-" });
  try {
    const issue = await makePki(dir);
    await issue("proxy", ["proxy.example.test"]);
    await issue("apps", ["*.apps.example.test"]);
    const { logger } = testLogger();
    const configured = ["proxy", "apps"].map((n) => ({
      certFile: `${dir}/${n}/fullchain.pem`,
      keyFile: `${dir}/${n}/privkey.pem`,
    }));
    const pairs = await loadWebKeyPairs({
      configured,
      dataDir: dir,
      names: [],
      clock: new RealClock(),
      logger,
    });
    await using mux = await startMultiplexer({
      listen: { host: "127.0.0.1", port: 0 },
      logger,
      tls: { keyPairs: pairs },
      handlers: { web: (s) => s.destroy() },
    });
    const proxy = await verify(mux.addr.port, dir, "proxy.example.test");
    assert.match(proxy, /Verify return code: 0 \(ok\)/, proxy);
    assert.equal(subjectOf(proxy), "proxy");
    // The intermediate is sent along: two certificates in the chain.
    assert.equal(proxy.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, proxy);
    const app = await verify(mux.addr.port, dir, "grafana.apps.example.test");
    assert.match(app, /Verify return code: 0 \(ok\)/, app);
    assert.equal(subjectOf(app), "apps");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WebKeyPairReloader.check() serves replaced files and keeps the old set when one fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-webcert-" });
  try {
    const issue = await makePki(dir);
    await issue("proxy", ["proxy.example.test"]);
    await issue("other", ["other.example.test"]);
    const { logger, records } = testLogger();
    const configured = [{
      certFile: `${dir}/live/fullchain.pem`,
      keyFile: `${dir}/live/privkey.pem`,
    }];
    const install = async (from: string, files = ["fullchain.pem", "privkey.pem"]) => {
      await Deno.mkdir(`${dir}/live`, { recursive: true });
      // certbot's way: write aside, rename over (atomic replacement).
      for (const f of files) {
        await Deno.copyFile(`${dir}/${from}/${f}`, `${dir}/live/${f}.new`);
        await Deno.rename(`${dir}/live/${f}.new`, `${dir}/live/${f}`);
      }
    };
    await install("proxy");
    const served = await loadWebKeyPairs({
      configured,
      dataDir: dir,
      names: [],
      clock: new RealClock(),
      logger,
    });
    await using mux = await startMultiplexer({
      listen: { host: "127.0.0.1", port: 0 },
      logger,
      tls: { keyPairs: served },
      handlers: { web: (s) => s.destroy() },
    });
    const reloader = new WebKeyPairReloader({
      configured,
      served,
      apply: (pairs) => mux.setKeyPairs(pairs),
      logger,
    });
    assert.equal(await reloader.check(), "unchanged");

    // Renewed: the next handshake gets the new certificate, no restart.
    await install("other");
    assert.equal(await reloader.check(), "reloaded");
    const renewed = await verify(mux.addr.port, dir, "other.example.test");
    assert.match(renewed, /Verify return code: 0 \(ok\)/, renewed);
    assert.equal(subjectOf(renewed), "other");
    assert.equal(await reloader.check(), "unchanged");

    // Half replaced (the certificate, not its key yet): refused, the old pair stays; logged once.
    await install("proxy", ["fullchain.pem"]);
    assert.equal(await reloader.check(), "failed");
    assert.equal(await reloader.check(), "failed");
    const warnings = records.filter((r) => r.message.startsWith("Cannot reload"));
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!.properties?.reason), /not the private key of the leaf/);
    assert.ok(!JSON.stringify(warnings).includes("PRIVATE KEY"), "key material in the log");
    assert.equal(subjectOf(await verify(mux.addr.port, dir, "other.example.test")), "other");

    // A missing file: refused too.
    await Deno.remove(`${dir}/live/privkey.pem`);
    assert.equal(await reloader.check(), "failed");
    assert.equal(subjectOf(await verify(mux.addr.port, dir, "other.example.test")), "other");

    // Completed: served.
    await install("proxy");
    assert.equal(await reloader.check(), "reloaded");
    assert.equal(subjectOf(await verify(mux.addr.port, dir, "proxy.example.test")), "proxy");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
