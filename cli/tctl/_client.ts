/**
 * How tctl finds the cluster: `--auth-server` + `--identity`, or (like
 * Teleport's tctl) the config file (`-c`, $TELEPORT_CONFIG_FILE,
 * /etc/teleport.yaml) which names the data dir with the admin identity and the
 * auth listen address. `--data-dir` is a shortcut for configs at defaults.
 */
import { AuthClient } from "../../lib/authclient/mod.ts";
import {
  type Addr,
  AUTH_PORT,
  DATA_DIR,
  dialAddrOf,
  loadConfigForStart,
  parseAddr,
  resolveProcessConfig,
} from "../../lib/config/mod.ts";
import { isKind } from "../../lib/errors/mod.ts";
import { type IdentityFile, readIdentityFile } from "../../lib/identity/mod.ts";
import { ADMIN_IDENTITY_FILE } from "../../lib/service/mod.ts";
import { CliError, type FlagSpec, type Parsed, str } from "../_common.ts";

/** Flags every tctl command takes. */
export const GLOBAL_FLAGS: FlagSpec = {
  config: { type: "string", short: "c" },
  "auth-server": { type: "string" },
  identity: { type: "string", short: "i" },
  "data-dir": { type: "string" },
  debug: { type: "boolean", short: "d" },
  help: { type: "boolean", short: "h" },
};

/** Connects on first use, so commands validate their input before dialling. */
export type Connect = () => Promise<TctlContext>;

/** A connected tctl session. */
export interface TctlContext {
  client: AuthClient;
  /** Address dialled, `host:port`. */
  authAddr: Addr;
  /** Auth public addresses from the config, for join hints. */
  authPublicAddrs: Addr[];
  /** Proxy public address for invite URLs, when the config names one. */
  proxyPublicAddr?: Addr;
  identity: IdentityFile;
}

/** Resolves where auth is and which identity to use, and builds the client. */
export async function connect(p: Parsed): Promise<TctlContext> {
  const env = Deno.env.toObject();
  const authFlag = str(p, "auth-server");
  const identityFlag = str(p, "identity");
  const dataDirFlag = str(p, "data-dir");
  const configFlag = str(p, "config");

  let dataDir = dataDirFlag ?? DATA_DIR;
  let authAddr: Addr | undefined = authFlag === undefined
    ? undefined
    : parseAddr(authFlag, AUTH_PORT, "--auth-server");
  let authPublicAddrs: Addr[] = [];
  let proxyPublicAddr: Addr | undefined;
  const file = await loadConfigForStart(
    configFlag === undefined ? {} : { config: configFlag },
    env,
  );
  if (file !== undefined) {
    const cfg = resolveProcessConfig({
      file,
      flags: dataDirFlag === undefined ? {} : { dataDir: dataDirFlag },
      hostname: Deno.hostname(),
      env,
    });
    dataDir = cfg.dataDir;
    authAddr ??= cfg.roles.auth ? dialAddrOf(cfg.auth.listenAddr) : cfg.authServers[0];
    authPublicAddrs = cfg.auth.publicAddrs;
    proxyPublicAddr = cfg.proxy.publicAddrs[0] ??
      (cfg.roles.proxy ? { host: cfg.nodeName, port: cfg.proxy.webListenAddr.port } : undefined);
  }
  authAddr ??= { host: "127.0.0.1", port: AUTH_PORT };
  const identityPath = identityFlag ?? `${dataDir}/${ADMIN_IDENTITY_FILE}`;
  let identity: IdentityFile;
  try {
    identity = await readIdentityFile(identityPath);
  } catch (err) {
    if (isKind(err, "NotFound")) {
      throw new CliError(
        `Cannot find an identity at ${identityPath}: run tctl on the auth host with the config (-c) or data dir (--data-dir) of the running auth service, or pass --auth-server and --identity`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new CliError(
        `Cannot read ${identityPath}: permission denied; run tctl as the user that runs teleport`,
      );
    }
    throw err;
  }
  const client = new AuthClient({
    host: authAddr.host,
    port: authAddr.port,
    caCertPems: identity.tlsCaCertPems,
    identity: { certPem: identity.tlsCertPem, keyPem: identity.keyPem },
  });
  return {
    client,
    authAddr,
    authPublicAddrs,
    identity,
    ...(proxyPublicAddr === undefined ? {} : { proxyPublicAddr }),
  };
}
