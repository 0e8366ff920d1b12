/**
 * PROXY protocol on the plain SSH listeners, with a real haproxy (`send-proxy-v2`, connecting
 * from 127.0.0.9) and the stock `ssh`:
 * - `proxy_service.proxy_protocol: on` on the proxy's SSH port (3023, separate mode) and
 *   `ssh_service.proxy_protocol: on` on the node's port: `ssh -J` through haproxy to the proxy,
 *   and `ssh` through haproxy straight to the node, both from 127.0.0.5; the node's
 *   `SSH_CLIENT` and the audit log's `session.start` name 127.0.0.5, never haproxy; a client
 *   that skips haproxy (no header) is refused on both ports;
 * - `off`: a spoofed header sent straight to either port is refused (no SSH banner), while an
 *   honest client on the same ports is served.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { startHaproxy, writeHaproxyConfig } from "./_haproxy.ts";
import {
  auditEvents,
  ensureOsUser,
  eventually,
  freePort,
  opensshArgs,
  run,
  runCli,
  startTeleport,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";

const LOGIN = "td_e2e_ppssh";
const CLUSTER = "e2e-ppssh.example";
const NODE = "e2e-ppssh-node";
/** haproxy's own source address towards teleport. */
const LB_SOURCE = "127.0.0.9";
/** Where the ssh client connects from. */
const CLIENT = "127.0.0.5";

/** `tctl -c config` with a user `alice` allowed `LOGIN`, and her key signed into `dir/alice`. */
async function aliceKey(config: string, dir: string): Promise<string> {
  const tctl = (...args: string[]) => runCli(["tctl", "-c", config, ...args]);
  const add = await tctl("users", "add", "alice", "--roles=access", `--logins=${LOGIN}`);
  assert.equal(add.code, 0, add.stderr);
  const signed = await tctl("auth", "sign", "--user=alice", `--out=${dir}/alice`, "--ttl=1h");
  assert.equal(signed.code, 0, signed.stderr);
  return `${dir}/alice`;
}

/** The `addr.remote` of every `session.start` event so far. */
async function sessionStartAddrs(config: string): Promise<string[]> {
  const events = await auditEvents<Record<string, string>>(config, "session.start");
  return events.map((e) => e["addr.remote"]!);
}

/**
 * Opens a raw TCP connection to `port`, sends `first` and an SSH banner, and returns what came
 * back before the server closed or answered with its own banner.
 */
async function rawSsh(port: number, first: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  try {
    await conn.write(new TextEncoder().encode(`${first}SSH-2.0-OpenSSH_9.6\r\n`));
    let got = "";
    const buf = new Uint8Array(4096);
    while (!got.includes("\r\n")) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        break; // reset by the server
      }
      if (n === null) break;
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
    return got;
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "PROXY protocol: haproxy send-proxy-v2 in front of the proxy SSH port and the node port",
  ignore: skipGroup("lb-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-ppssh-");
    const proxySshPort = freePort();
    const nodePort = freePort();
    const lbSshPort = freePort();
    const lbNodePort = freePort();
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
      nodePort,
      proxyListenerMode: "separate",
      proxy: `  listen_addr: 127.0.0.1:${proxySshPort}\n` +
        `  tunnel_listen_addr: 127.0.0.1:${freePort()}\n  proxy_protocol: on\n`,
      ssh: "  proxy_protocol: on\n",
    });
    const haproxyCfg = await writeHaproxyConfig(dir.path, {
      mode: "tcp",
      sections: `frontend proxyssh
  bind 127.0.0.1:${lbSshPort}
  default_backend proxyssh
backend proxyssh
  server tp 127.0.0.1:${proxySshPort} send-proxy-v2 source ${LB_SOURCE}
frontend nodessh
  bind 127.0.0.1:${lbNodePort}
  default_backend nodessh
backend nodessh
  server node 127.0.0.1:${nodePort} send-proxy-v2 source ${LB_SOURCE}
`,
    });
    await ensureOsUser(LOGIN);
    await using tp = await startTeleport(["-c", config]);
    assert.equal(tp.proxySshPort, proxySshPort, tp.banner);
    await using _lb = await startHaproxy(haproxyCfg, lbSshPort);
    const key = await aliceKey(config, dir.path);
    const common = ["-o", `BindAddress=${CLIENT}`];

    await t.step("ssh -J through haproxy to the proxy SSH port reaches the node", async () => {
      const jump = ["ssh", ...opensshArgs({ port: lbSshPort, key, target: "", command: "" })]
        .slice(0, -2).join(" ");
      const r = await run(
        "ssh",
        opensshArgs({
          port: nodePort,
          key,
          target: `${LOGIN}@${NODE}`,
          command: "echo $SSH_CLIENT",
          extra: [
            ...common,
            "-o",
            `ProxyCommand=${jump} -b ${CLIENT} -W %h:%p ${LOGIN}@127.0.0.1`,
          ],
        }),
      );
      assert.equal(r.code, 0, r.err + tp.logs());
      assert.match(r.out.trim(), new RegExp(`^${CLIENT.replaceAll(".", "\\.")} \\d+ ${nodePort}$`));
    });

    await t.step("ssh through haproxy straight to the node port", async () => {
      const r = await run(
        "ssh",
        opensshArgs({
          port: lbNodePort,
          key,
          target: `${LOGIN}@127.0.0.1`,
          command: "echo $SSH_CLIENT",
          extra: common,
        }),
      );
      assert.equal(r.code, 0, r.err + tp.logs());
      assert.match(r.out.trim(), new RegExp(`^${CLIENT.replaceAll(".", "\\.")} \\d+ \\d+$`));
    });

    await t.step("the audit log names the client, never haproxy", async () => {
      const addrs = await eventually(
        "two session.start events",
        async () => {
          const a = await sessionStartAddrs(config);
          return a.length >= 2 ? a : undefined;
        },
      );
      for (const a of addrs) assert.match(a, new RegExp(`^${CLIENT.replaceAll(".", "\\.")}:\\d+$`));
    });

    await t.step("a client that skips haproxy is refused on both ports", async () => {
      for (const port of [proxySshPort, nodePort]) {
        const r = await run(
          "ssh",
          opensshArgs({ port, key, target: `${LOGIN}@127.0.0.1`, command: "true" }),
        );
        assert.notEqual(r.code, 0, `port ${port}: ${r.out}`);
      }
      assert.match(tp.logs(), /no PROXY header, and proxy_service\.proxy_protocol is on/);
      assert.match(tp.logs(), /no PROXY header, and ssh_service\.proxy_protocol is on/);
    });
  },
});

Deno.test({
  name:
    "PROXY protocol: a spoofed header straight to the proxy SSH port or the node port is refused when off",
  ignore: skipGroup("lb-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dir = await tempDir("tp-e2e-ppsshoff-");
    const proxySshPort = freePort();
    const nodePort = freePort();
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
      nodePort,
      proxyListenerMode: "separate",
      proxy: `  listen_addr: 127.0.0.1:${proxySshPort}\n` +
        `  tunnel_listen_addr: 127.0.0.1:${freePort()}\n  proxy_protocol: off\n`,
      // ssh_service.proxy_protocol is off when left out.
    });
    await using tp = await startTeleport(["-c", config]);
    const spoof = "PROXY TCP4 203.0.113.50 127.0.0.1 5555 22\r\n";
    for (const port of [proxySshPort, nodePort]) {
      assert.match(await rawSsh(port, ""), /^SSH-2\.0-/, `honest client on ${port}`);
      assert.equal(await rawSsh(port, spoof), "", `spoofed header on ${port}`);
    }
    const logs = tp.logs();
    assert.match(logs, /v1 header arrived and proxy_service\.proxy_protocol is off/);
    assert.match(logs, /v1 header arrived and ssh_service\.proxy_protocol is off/);
    assert.doesNotMatch(logs, /203\.0\.113\.50/);
  },
});
