/**
 * A public_addr changed after the first start takes effect: on restart the proxy and node
 * notice that their stored host certificates do not carry the names the config asks for,
 * re-register (with the local auth server, or a remote one authenticated by the stored
 * identity) and serve the new certificates, which the stock `ssh` accepts for the new name.
 */
import assert from "node:assert/strict";
import { parseSshCertificate } from "../../lib/ca/mod.ts";
import { type ProcessConfig, resolveProcessConfig } from "../../lib/config/mod.ts";
import { type IdentityFile, readIdentityFile } from "../../lib/identity/mod.ts";
import { type NodeReady, type ProxyReady, TeleportProcess } from "../../lib/service/mod.ts";
import { skipGroup } from "../../tools/prereqs.ts";
import { startTestCluster } from "./_cluster.ts";

async function principalsOf(path: string): Promise<string[]> {
  const id = await readIdentityFile(path);
  return parseSshCertificate(id.sshCert!).principals;
}

function hostCaLines(id: IdentityFile): string[] {
  const user = new Set(id.sshUserCaKeys ?? []);
  return id.sshCaKeys.filter((k) => !user.has(k));
}

/**
 * Runs the stock ssh against 127.0.0.1:port, checking the host certificate for `name`
 * (HostKeyAlias) against the host CA; returns its stderr. It has no key, so a host it trusts
 * ends in "Permission denied"; one whose certificate does not list the name, in
 * "Host key verification failed".
 */
async function sshCheckName(
  dir: string,
  port: number,
  name: string,
  hostCa: string[],
): Promise<string> {
  const knownHosts = `${dir}/known_hosts_${name}`;
  await Deno.writeTextFile(
    knownHosts,
    hostCa.map((k) => `@cert-authority ${name} ${k}\n`).join(""),
  );
  const out = await new Deno.Command("ssh", {
    args: [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      `HostKeyAlias=${name}`,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "IdentityAgent=none",
      "-o",
      "PreferredAuthentications=publickey",
      // The server's host key or certificate and the CA check in the output, should it fail.
      "-o",
      "LogLevel=DEBUG1",
      "-p",
      String(port),
      "nobody@127.0.0.1",
      "true",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stderr);
}

function assertTrusted(stderr: string, name: string): void {
  assert.doesNotMatch(stderr, /Host key verification failed|not a listed principal/, stderr);
  assert.match(stderr, /Permission denied/, `${name}: ${stderr}`);
}

Deno.test({
  name: "TeleportProcess.start() renews proxy and node certificates when public_addr changed",
  ignore: skipGroup("reregister"),
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "tp-rereg-" });
    try {
      const config = (proxyName: string, nodeName: string): ProcessConfig => {
        const c = resolveProcessConfig({
          flags: { roles: "auth,proxy,node", dataDir, clusterName: "example" },
          hostname: "testhost",
          env: {},
        });
        const local = { host: "127.0.0.1", port: 0 };
        c.auth.listenAddr = local;
        c.proxy.webListenAddr = local;
        c.proxy.sshListenAddr = local;
        c.proxy.tunnelListenAddr = local;
        c.proxy.publicAddrs = [{ host: proxyName, port: 3080 }];
        c.ssh.listenAddr = local;
        c.ssh.publicAddrs = [{ host: nodeName, port: 3022 }];
        c.connectionLimits.unauthenticatedRate = { burst: 10_000, perMinute: 10_000 };
        return c;
      };
      const proxyPath = `${dataDir}/proxy.identity`;
      const nodePath = `${dataDir}/node.identity`;
      {
        await using first = await TeleportProcess.start({
          config: config("proxy-a.example.test", "node-a.example.test"),
          hostname: "testhost",
        });
        await first.supervisor.waitFor("node.ready");
      }
      assert.ok((await principalsOf(proxyPath)).includes("proxy-a.example.test"));
      assert.ok((await principalsOf(nodePath)).includes("node-a.example.test"));

      await using proc = await TeleportProcess.start({
        config: config("proxy-b.example.test", "node-b.example.test"),
        hostname: "testhost",
      });
      const node = await proc.supervisor.waitFor("node.ready") as NodeReady;
      const proxy = await proc.supervisor.waitFor("proxy.ready") as ProxyReady;
      const proxyNames = await principalsOf(proxyPath);
      assert.ok(proxyNames.includes("proxy-b.example.test"), proxyNames.join(","));
      assert.ok(!proxyNames.includes("proxy-a.example.test"), proxyNames.join(","));
      const nodeNames = await principalsOf(nodePath);
      assert.ok(nodeNames.includes("node-b.example.test"), nodeNames.join(","));
      assert.ok(!nodeNames.includes("node-a.example.test"), nodeNames.join(","));

      const hostCa = hostCaLines(await readIdentityFile(nodePath));
      assertTrusted(
        await sshCheckName(dataDir, node.port, "node-b.example.test", hostCa),
        "node",
      );
      assertTrusted(
        await sshCheckName(dataDir, proxy.sshPort, "proxy-b.example.test", hostCa),
        "proxy",
      );
      // The old name is gone from what the services present.
      assert.match(
        await sshCheckName(dataDir, node.port, "node-a.example.test", hostCa),
        /Host key verification failed/,
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "TeleportProcess.start() renews a joined node's certificate through the remote auth API",
  ignore: skipGroup("reregister"),
  async fn() {
    await using cluster = await startTestCluster();
    using admin = cluster.adminClient();
    const token = (await admin.createToken({ roles: ["node"], ttlMs: 600_000 })).metadata.name;
    // Only a node or proxy host renews, and only its own certificate (id and role are its own).
    await assert.rejects(
      admin.reRegister({
        node_name: "x",
        additional_principals: [],
        public_ssh_key: "ssh-ed25519 AAAA",
        public_tls_key: "k",
      }),
      /only node and proxy hosts renew their certificates/,
    );
    const dataDir = await Deno.makeTempDir({ prefix: "tp-rereg-node-" });
    try {
      const config = (publicName: string): ProcessConfig => {
        const c = resolveProcessConfig({
          flags: {
            roles: "node",
            dataDir,
            token,
            authServer: `127.0.0.1:${cluster.ready.port}`,
            nodename: "joined",
          },
          hostname: "testhost",
          env: {},
        });
        c.ssh.listenAddr = { host: "127.0.0.1", port: 0 };
        c.ssh.publicAddrs = [{ host: publicName, port: 3022 }];
        return c;
      };
      const nodePath = `${dataDir}/node.identity`;
      {
        await using first = await TeleportProcess.start({
          config: config("old.example.test"),
          hostname: "testhost",
        });
        await first.supervisor.waitFor("node.ready");
      }
      // The token was used up by the join: the restart authenticates with the stored identity.
      await using proc = await TeleportProcess.start({
        config: config("new.example.test"),
        hostname: "testhost",
      });
      const node = await proc.supervisor.waitFor("node.ready") as NodeReady;
      const names = await principalsOf(nodePath);
      assert.ok(names.includes("new.example.test"), names.join(","));
      assert.ok(!names.includes("old.example.test"), names.join(","));
      assertTrusted(
        await sshCheckName(
          dataDir,
          node.port,
          "new.example.test",
          hostCaLines(await readIdentityFile(nodePath)),
        ),
        "node",
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
