/**
 * The commented teleport.yaml printed by `teleport configure`.
 */
import { BadParameterError } from "../errors/mod.ts";
import { formatAddr, parseAddr } from "./addr.ts";
import {
  AUTH_PORT,
  CONFIG_PATH,
  DATA_DIR,
  DIAG_PORT,
  LISTEN_HOST,
  LOG_FORMAT,
  LOG_OUTPUT,
  LOG_SEVERITY,
  NODE_SSH_PORT,
  PROXY_SSH_PORT,
  SAMPLE_CONFIG_VERSION,
  SAMPLE_PROXY_LISTENER_MODE,
  SECOND_FACTOR,
  TUNNEL_PORT,
  WEB_PORT,
} from "./defaults.ts";
import { CLUSTER_NAME } from "./file_config.ts";

/** Options of {@link formatSampleConfig}; absent values leave the key commented out. */
export interface SampleConfigOptions {
  /** `auth_service.cluster_name`. */
  clusterName?: string;
  /** `teleport.nodename`. */
  nodeName?: string;
  /** `teleport.data_dir` (default /var/lib/teleport). */
  dataDir?: string;
  /** `proxy_service.public_addr`, `host` or `host:port` (default port 3080). */
  publicAddr?: string;
}

const q = (s: string) => JSON.stringify(s);

/**
 * Returns a commented config v3 with every section, `proxy_listener_mode:
 * multiplex` and the auth, proxy and SSH services enabled. The text loads
 * back through `parseFileConfig`. Throws BadParameterError for a bad option.
 */
export function formatSampleConfig(opts: SampleConfigOptions = {}): string {
  const clusterName = opts.clusterName?.trim();
  if (clusterName && !CLUSTER_NAME.test(clusterName)) {
    throw new BadParameterError(
      `Cannot parse --cluster-name "${clusterName}": use letters, digits and . _ - : only`,
    );
  }
  const publicAddr = opts.publicAddr?.trim()
    ? formatAddr(parseAddr(opts.publicAddr, WEB_PORT, "--public-addr"))
    : undefined;
  const nodeName = opts.nodeName?.trim();
  const dataDir = opts.dataDir?.trim() || DATA_DIR;
  const on = (v: string | undefined, key: string, example: string) =>
    v ? `${key}: ${q(v)}` : `# ${key}: ${example}`;
  const listen = (port: number) => formatAddr({ host: LISTEN_HOST, port });

  return `# teleport.yaml: configuration of the teleport daemon.
# Start with: teleport start --config=${CONFIG_PATH}
# Keys not listed here are errors; commented keys show optional settings.
version: ${SAMPLE_CONFIG_VERSION}

# Settings shared by every service this process runs.
teleport:
  # Name of this host in the cluster. Defaults to the host name.
  ${on(nodeName, "nodename", "node1.example.com")}
  # Keys, certificates, the host identity and (on auth) the cluster state live here.
  # Keep it readable by the teleport user only.
  data_dir: ${q(dataDir)}
  # Write the process id to this file (for systemd and \`kill -HUP\`).
  # pid_file: /run/teleport.pid
  log:
    # stderr, stdout or a file path.
    output: ${LOG_OUTPUT}
    # DEBUG, INFO, WARN or ERROR.
    severity: ${LOG_SEVERITY}
    format:
      # text or json.
      output: ${LOG_FORMAT}
  # An agent (a node or proxy on another host) joins the cluster through the
  # auth service or a proxy; set one of these two:
  # auth_server: auth.example.com:${AUTH_PORT}
  # proxy_server: proxy.example.com:${WEB_PORT}
  # The join token from \`tctl tokens add\`, or a path to a file holding it.
  # auth_token: /var/lib/teleport/join-token
  # Pin(s) of the cluster CA from \`tctl status\`; a joining agent trusts only
  # a CA that matches. Without a pin the agent joins but logs a warning.
  # ca_pin: "sha256:<hex>"
  # Address of the diagnostics endpoint (health, readiness).
  # diag_addr: 127.0.0.1:${DIAG_PORT}
  # On SIGQUIT the process stops accepting and waits this long at most for
  # sessions and tunnels to end by themselves.
  # drain_timeout: 5m

# The auth service: certificate authorities, users, roles, join tokens, audit log.
auth_service:
  enabled: yes
  # Address of the auth API (mutual TLS).
  listen_addr: ${listen(AUTH_PORT)}
  # Name of the cluster; it can never change once the auth service started.
  # Defaults to the host name.
  ${on(clusterName, "cluster_name", "teleport.example.com")}
  # Extra names for the auth service's certificate (string or list).
  # public_addr: auth.example.com:${AUTH_PORT}
  # multiplex: the proxy serves web, SSH and reverse tunnels on the web port
  # (TLS routing). separate: web ${WEB_PORT}, SSH ${PROXY_SSH_PORT} and tunnels ${TUNNEL_PORT}.
  proxy_listener_mode: ${SAMPLE_PROXY_LISTENER_MODE}
  # Static join tokens "<roles>:<token>" (roles: auth, proxy, node). They never
  # expire; prefer short-lived tokens from \`tctl tokens add\`.
  # tokens:
  #   - "node:<long random token>"
  authentication:
    # Only local users are supported.
    type: local
    # off, otp, on or optional.
    second_factor: ${SECOND_FACTOR}

# The SSH service: makes this host reachable through the cluster.
ssh_service:
  enabled: yes
  listen_addr: ${listen(NODE_SSH_PORT)}
  # Extra names for the host certificate (string or list).
  # public_addr: node1.example.com:${NODE_SSH_PORT}
  # Labels select hosts in roles and in \`tsh ls\`.
  # labels:
  #   env: staging

# The proxy service: web UI and API, SSH jump host, reverse tunnel endpoint.
proxy_service:
  enabled: yes
  # Web UI, /webapi and, in multiplex mode, every protocol (TLS routing).
  web_listen_addr: ${listen(WEB_PORT)}
  # The address users and agents reach the proxy at (host:port, string or
  # list; the first one is used in links and by agents).
  ${on(publicAddr, "public_addr", `proxy.example.com:${WEB_PORT}`)}
  # Separate listeners; in multiplex mode they are optional.
  # listen_addr: ${listen(PROXY_SSH_PORT)}
  # tunnel_listen_addr: ${listen(TUNNEL_PORT)}
  # Public addresses of those listeners when they differ from public_addr.
  # ssh_public_addr: proxy.example.com:${PROXY_SSH_PORT}
  # tunnel_public_addr: proxy-internal.example.com:${TUNNEL_PORT}
  # TLS certificate (full chain) and key of the web listener. Without them
  # the proxy uses a self-signed certificate.
  # https_keypairs:
  #   - key_file: /var/lib/teleport/webproxy_key.pem
  #     cert_file: /var/lib/teleport/webproxy_cert.pem
`;
}
