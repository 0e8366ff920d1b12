/**
 * `tsh config`: an OpenSSH client configuration so plain `ssh <node>.<cluster>` goes through
 * the proxy with the profile's key and certificate (ProxyCommand `tsh proxy ssh`), and trusts
 * hosts by the cluster's host CA (`@cert-authority` lines in the profile's known_hosts).
 */
import { BadParameterError } from "../errors/mod.ts";

/** The node SSH port the generated config dials through the proxy. */
export const DEFAULT_NODE_SSH_PORT = 3022;

/** Host key algorithms of certificates our CAs issue (Ed25519 and ECDSA P-256). */
export const CERT_HOST_KEY_ALGORITHMS = [
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
] as const;

/** Options for {@link formatSshConfig}. */
export interface SshConfigOptions {
  /** Cluster name. */
  cluster: string;
  /** The proxy's host (excluded from the ProxyCommand block). */
  proxyHost: string;
  /** The proxy's web address as `--proxy` takes it (`host:port`). */
  proxyAddr: string;
  /** The profile's known_hosts. */
  knownHostsPath: string;
  /** The SSH private key. */
  identityPath: string;
  /** The SSH certificate. */
  certificatePath: string;
  /** How to run tsh, a shell command prefix (see {@link tshInvocation}). */
  tshCommand: string;
  /** @default {DEFAULT_NODE_SSH_PORT} */
  nodePort?: number;
}

/** Checks that a path can sit in ssh_config and shell double quotes; returns it quoted. */
function quotedPath(path: string, what: string): string {
  if (/["$`\\\n\r]/.test(path)) {
    throw new BadParameterError(
      `Cannot write ssh config: the ${what} path ${JSON.stringify(path)} holds a character ` +
        "(quote, $, backtick, backslash or line break) that cannot be quoted there",
    );
  }
  return `"${path}"`;
}

/**
 * How ssh should run this program: `"<deno>" run -A --quiet "<main.ts>" tsh` when it runs
 * from a local script (`mainModule` a file: URL of a .ts/.js file), else `"<binary>" tsh`.
 * With `teleportHome`, prefixed by `env TELEPORT_HOME="<path>"` (ssh runs ProxyCommand with
 * `exec`, so a bare `VAR=x` prefix would not work).
 */
export function tshInvocation(o: {
  execPath: string;
  mainModule: string;
  teleportHome?: string;
}): string {
  let cmd: string;
  const main = o.mainModule;
  const script = main.startsWith("file:") && /\.(ts|js|mjs)$/.test(main) &&
    !main.includes("/deno-compile-");
  if (script) {
    const path = decodeURIComponent(new URL(main).pathname);
    cmd = `${quotedPath(o.execPath, "program")} run -A --quiet ${quotedPath(path, "script")} tsh`;
  } else {
    cmd = `${quotedPath(o.execPath, "program")} tsh`;
  }
  if (o.teleportHome !== undefined) {
    cmd = `env TELEPORT_HOME=${quotedPath(o.teleportHome, "TELEPORT_HOME")} ${cmd}`;
  }
  return cmd;
}

/** Formats the ssh_config block; see the module doc. */
export function formatSshConfig(o: SshConfigOptions): string {
  if (!/^[A-Za-z0-9._-]+$/.test(o.cluster) || !/^[A-Za-z0-9._:-]+$/.test(o.proxyHost)) {
    throw new BadParameterError(
      "Cannot write ssh config: the cluster or proxy name has characters ssh_config patterns " +
        "cannot hold",
    );
  }
  if (!/^[A-Za-z0-9._:[\]-]+$/.test(o.proxyAddr)) {
    throw new BadParameterError(`Cannot write ssh config: bad proxy address ${o.proxyAddr}`);
  }
  const port = o.nodePort ?? DEFAULT_NODE_SSH_PORT;
  const tshCommand = o.tshCommand.replaceAll("%", "%%");
  return [
    `# Begin generated Teleport configuration for ${o.proxyHost} by tsh`,
    "",
    `# Common flags for all ${o.cluster} hosts`,
    `Host *.${o.cluster} ${o.proxyHost}`,
    `    UserKnownHostsFile ${quotedPath(o.knownHostsPath, "known_hosts").replaceAll("%", "%%")}`,
    `    IdentityFile ${quotedPath(o.identityPath, "key").replaceAll("%", "%%")}`,
    `    CertificateFile ${quotedPath(o.certificatePath, "certificate").replaceAll("%", "%%")}`,
    `    HostKeyAlgorithms ${CERT_HOST_KEY_ALGORITHMS.join(",")}`,
    `    PubkeyAcceptedAlgorithms +ssh-ed25519-cert-v01@openssh.com`,
    "",
    `# Flags for all ${o.cluster} hosts except the proxy`,
    `Host *.${o.cluster} !${o.proxyHost}`,
    `    Port ${port}`,
    `    ProxyCommand ${tshCommand} proxy ssh --cluster=${o.cluster} --proxy=${o.proxyAddr} ` +
    "%r@%h:%p",
    "",
    "# End generated Teleport configuration",
    "",
  ].join("\n");
}
