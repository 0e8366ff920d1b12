/**
 * SSH server and client with OpenSSH certificate authentication, the only user of npm:ssh2.
 * {@linkcode startSshServer} serves certificate logins (host certificate presented, user
 * certificates verified, `authenticate` decides) and refuses every channel or request without a
 * handler; {@linkcode connectSsh} logs in with a key and certificate to our server or OpenSSH.
 * Both ends open channels of custom types ({@linkcode SshChannel}, with channel requests) and
 * send global requests to each other, as reverse tunnels need; {@linkcode copyingStream} runs
 * a second SSH connection inside such a channel.
 *
 * ```ts ignore
 * import { connectSsh, startSshServer } from "./mod.ts";
 * const server = await startSshServer({
 *   hostKey, hostCertificate, listen: { port: 0 },
 *   // The signature over the session was verified already; check CA, principal, validity.
 *   authenticate: ({ username, certificate }) =>
 *     verifySshCertificate(certificate, {
 *       trustedCaKeys: [userCa.publicKeyBlob], certType: "user", principal: username,
 *       now: clock.now(),
 *     }).then(
 *       () => ({ ok: true, context: { username } }),
 *       (err) => ({ ok: false, reason: err.message }),
 *     ),
 *   handlers: {
 *     session: (open) => {
 *       open.accept((req) => {
 *         if (req.type !== "exec") return req.reject();
 *         const ch = req.accept();
 *         ch.write("hello\n");
 *         ch.exit(0);
 *         ch.end();
 *       });
 *     },
 *   },
 * });
 * const client = await connectSsh({
 *   port: server.addr.port, username: "alice", key: userKey, certificate: userCert,
 *   verifyHostKey: ({ keyBlob }) => equal(keyBlob, hostKey.publicKeyBlob),
 * });
 * const { stdout, exitCode } = await client.exec("anything");
 * ```
 *
 * @module
 */
export {
  type AgentForwardRequest,
  type DirectTcpipOpen,
  type EnvRequest,
  type ExecRequest,
  type GlobalRequest,
  type PtyRequest,
  type ServerSession,
  type SessionOpen,
  type SessionRequest,
  type SessionRequestHandler,
  type ShellRequest,
  type SignalRequest,
  type SocketAddresses,
  SSH_SERVER_IDENT,
  type SshAuthFailure,
  type SshAuthRequest,
  type SshAuthResult,
  type SshConnection,
  SshServer,
  type SshServerHandlers,
  type SshServerOptions,
  startSshServer,
  type SubsystemRequest,
  type WindowChangeRequest,
  type X11Request,
} from "./server.ts";
export {
  type ClientSession,
  connectSsh,
  type ConnectSshOptions,
  type ExecResult,
  type ForwardedConnection,
  type HostKeyInfo,
  type RemoteForwardHandle,
  type SessionOptions,
  SshClient,
} from "./client.ts";
export { encodeTerminalModes, parseTerminalModes, TERMINAL_MODES } from "./terminal_modes.ts";
export {
  type ChannelOpenFailureReason,
  type ChannelRejection,
  type ClientChannel,
  type ExitStatus,
  type IncomingChannelOpen,
  type IncomingChannelRequest,
  type IncomingGlobalRequest,
  type PtyOptions,
  type ServerChannel,
  spliceChannel,
  type SshChannel,
  type WindowSize,
} from "./channel.ts";
export { copyingStream } from "./copy_stream.ts";
