/**
 * The tsh library: the profile store (`~/.tsh`), login through the proxy's web API, reaching
 * the cluster's auth API and SSH servers through the proxy (TLS routing or the proxy's SSH
 * port, `proxy:<host>:<port>` subsystem, host certificates checked against the cluster's host
 * CA), local port forwarding, session playback and the OpenSSH client configuration.
 *
 * ```ts ignore
 * import { connectToNode, LinePrompter, login, openClientContext, ProfileStore } from "./mod.ts";
 * const store = new ProfileStore("/home/alice/.tsh");
 * await login({
 *   store, proxy: { host: "proxy.example.com", port: 3080 }, user: "alice", trust: {},
 *   prompt: new LinePrompter(Deno.stdin, Deno.stderr).prompt,
 * });
 * const ctx = await openClientContext(store);
 * await using node = await connectToNode(ctx, { target: "web1", login: "alice" });
 * const { stdout } = await node.client.exec("uptime");
 * ```
 *
 * @module
 */
export { formatHostPort, type HostPort, isUnspecifiedHost, parseHostPort } from "./addr.ts";
export {
  parseKnownHostsCaKeys,
  type Profile,
  type ProfileKeys,
  type ProfilePaths,
  ProfileStore,
  replaceKnownHostsCaKeys,
  resolveTshHome,
  validateClusterName,
} from "./profile.ts";
export {
  CONN_UPGRADE_ENV,
  connectionUpgradeRequired,
  type ConnUpgradeOptions,
  dialSshRoutingTls,
  dialTlsRoutingStream,
  dialUpgraded,
  forgetConnUpgradeDecisions,
} from "./conn_upgrade.ts";
export {
  type CreateSshCertsRequest,
  dialWebTls,
  type DialWebTlsOptions,
  type SshLoginResponse,
  WebClient,
  type WebClientOptions,
  type WebPingResponse,
  type WebTlsConnection,
  type WebTrust,
} from "./web.ts";
export {
  DEFAULT_CERT_TTL_MS,
  DEFAULT_PROXY_SSH_PORT,
  login,
  type LoginOptions,
  type LoginResult,
  type Prompt,
  sshProxyAddrOf,
  wantsOtp,
} from "./login.ts";
export { LinePrompter, type PromptInput, type PromptOutput } from "./prompt.ts";
export { type ClusterApi, type ListOptions, openClusterApi } from "./cluster.ts";
export {
  DEFAULT_LIST_CACHE_MAX_AGE_MS,
  type ListCacheOptions,
  withListCache,
} from "./list_cache.ts";
export { verifyHostCertificate, type VerifyHostCertificateOptions } from "./host_cert.ts";
export {
  type ClientContext,
  connectToNode,
  type ConnectToNodeOptions,
  dialProxySsh,
  type DialProxySshOptions,
  type NodeConnection,
  nodeLabel,
  openProxySubsystem,
  resolveNode,
  webTrustOf,
} from "./dial.ts";
export { openClientContext, type OpenClientContextOptions } from "./context.ts";
export { type ProfileStatus, profileStatus } from "./status.ts";
export {
  type LocalForward,
  type LocalForwardSpec,
  parseLocalForwardSpec,
  startLocalForward,
  type StartLocalForwardOptions,
} from "./forward.ts";
export { AGENT_CHANNEL_TYPE, agentChannelHandler } from "./agent.ts";
export {
  parseRemoteForwardSpec,
  type RemoteForward,
  type RemoteForwardSpec,
  startRemoteForward,
  type StartRemoteForwardOptions,
} from "./remote_forward.ts";
export { quoteRemotePath, scpDownload, type ScpOptions, scpUpload } from "./scp.ts";
export {
  checkSpeed,
  DEFAULT_MAX_IDLE_MS,
  playbackDelay,
  playRecording,
  type PlayRecordingOptions,
  type PlayRecordingResult,
  terminalResizeSequence,
} from "./play.ts";
export {
  CERT_HOST_KEY_ALGORITHMS,
  DEFAULT_NODE_SSH_PORT,
  formatSshConfig,
  type SshConfigOptions,
  tshInvocation,
} from "./ssh_config.ts";
// Test helpers (fake proxy web API, fake proxy SSH server and nodes, throwaway CAs), for the
// tests of lib/client and cli/tsh.
export {
  fakeClusterApi,
  type FakeNode,
  type FakeSshProxy,
  type FakeWebProxy,
  type FakeWebProxyOptions,
  startFakeNode,
  startFakeSshProxy,
  startFakeWebProxy,
  type TestCluster,
  testCluster,
  webCertificate,
} from "./_testing.ts";
