import assert from "node:assert/strict";
import { formatSshConfig, tshInvocation } from "./ssh_config.ts";

Deno.test("formatSshConfig() writes the two Host blocks tsh config prints", () => {
  const text = formatSshConfig({
    cluster: "c1",
    proxyHost: "proxy.example.com",
    proxyAddr: "proxy.example.com:3080",
    knownHostsPath: "/home/a/.tsh/known_hosts",
    identityPath: "/home/a/.tsh/keys/proxy.example.com/alice",
    certificatePath: "/home/a/.tsh/keys/proxy.example.com/alice-ssh/c1-cert.pub",
    tshCommand: '"/usr/bin/deno" run -A --quiet "/src/main.ts" tsh',
  });
  assert.equal(
    text,
    `# Begin generated Teleport configuration for proxy.example.com by tsh

# Common flags for all c1 hosts
Host *.c1 proxy.example.com
    UserKnownHostsFile "/home/a/.tsh/known_hosts"
    IdentityFile "/home/a/.tsh/keys/proxy.example.com/alice"
    CertificateFile "/home/a/.tsh/keys/proxy.example.com/alice-ssh/c1-cert.pub"
    HostKeyAlgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com
    PubkeyAcceptedAlgorithms +ssh-ed25519-cert-v01@openssh.com

# Flags for all c1 hosts except the proxy
Host *.c1 !proxy.example.com
    Port 3022
    ProxyCommand "/usr/bin/deno" run -A --quiet "/src/main.ts" tsh proxy ssh --cluster=c1 --proxy=proxy.example.com:3080 %r@%h:%p

# End generated Teleport configuration
`,
  );
});

Deno.test("formatSshConfig() escapes % and refuses paths it cannot quote", () => {
  const o = {
    cluster: "c1",
    proxyHost: "p",
    proxyAddr: "p:3080",
    knownHostsPath: "/h/100%/known_hosts",
    identityPath: "/h/k",
    certificatePath: "/h/c",
    tshCommand: "tsh",
  };
  assert.match(formatSshConfig(o), /UserKnownHostsFile "\/h\/100%%\/known_hosts"/);
  assert.throws(() => formatSshConfig({ ...o, identityPath: '/h/"x' }), /cannot be quoted/);
  assert.throws(() => formatSshConfig({ ...o, cluster: "a b" }), /cannot hold/);
});

Deno.test("tshInvocation() runs a local script with deno, a binary directly", () => {
  assert.equal(
    tshInvocation({ execPath: "/usr/bin/deno", mainModule: "file:///src/my%20dir/main.ts" }),
    '"/usr/bin/deno" run -A --quiet "/src/my dir/main.ts" tsh',
  );
  assert.equal(
    tshInvocation({
      execPath: "/usr/local/bin/teleport",
      mainModule: "file:///tmp/deno-compile-teleport/main.ts",
    }),
    '"/usr/local/bin/teleport" tsh',
  );
  assert.equal(
    tshInvocation({
      execPath: "/usr/local/bin/teleport",
      mainModule: "file:///tmp/deno-compile-teleport/main.ts",
      teleportHome: "/work/t h",
    }),
    'env TELEPORT_HOME="/work/t h" "/usr/local/bin/teleport" tsh',
  );
});
