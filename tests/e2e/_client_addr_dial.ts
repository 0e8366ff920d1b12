/**
 * An OpenSSH ProxyCommand that connects straight to a node's SSH port and speaks first with a
 * PROXY v2 header, to test what the node believes:
 *
 *   deno run -A _client_addr_dial.ts <node port> <signed|unsigned> <identity file> <client ip>
 *
 * `signed` signs the header with the host key and certificate of the identity file (a proxy's
 * makes a genuine header, a node's one the node must refuse); `unsigned` sends the same addresses
 * with no signature. Then stdin/stdout are piped to the socket.
 */
import net from "node:net";
import type { Buffer } from "node:buffer";
import { importSshPrivateKey, parseAuthorizedKey } from "../../lib/ca/mod.ts";
import { readIdentityFile, signClientAddrHeader } from "../../lib/identity/mod.ts";
import { formatProxyHeaderV2 } from "../../lib/net/mod.ts";

const [portText, mode, identityPath, clientIp] = Deno.args;
const sock = net.connect({ host: "127.0.0.1", port: Number(portText) });
sock.setNoDelay(true);
await new Promise((resolve, reject) => {
  sock.once("connect", resolve);
  sock.once("error", reject);
});
const source = { addr: clientIp!, port: 40000 };
const destination = { addr: sock.remoteAddress!, port: sock.remotePort! };
let header: Uint8Array;
if (mode === "signed") {
  const id = await readIdentityFile(identityPath!);
  const key = await importSshPrivateKey(id.keyPem);
  header = await signClientAddrHeader({
    signer: { ...key, certificate: parseAuthorizedKey(id.sshCert!).blob },
    source,
    destination,
    now: new Date(),
  });
} else {
  header = formatProxyHeaderV2({ source, destination });
}
sock.write(header);
sock.on("data", (d: Buffer) => Deno.stdout.writeSync(d));
sock.on("close", () => Deno.exit(0));
sock.on("error", () => Deno.exit(1));
for await (const chunk of Deno.stdin.readable) sock.write(chunk);
sock.end();
