/**
 * One SSH `session` channel on the node: every request is authorized against
 * the user's access (from the certificate), then runs for real — a login shell
 * or command on a PTY as the OS user, or a command on pipes, or the sftp
 * subsystem. A certificate's `force-command` replaces exec, shell and subsystem
 * requests alike (OpenSSH semantics); roles without file copy refuse sftp and
 * the scp server (`scp -t`/`scp -f`, see scp.ts). Interactive (PTY) sessions
 * are recorded, tracked in auth and joinable (`env TELEPORT_SESSION=<sid>` then `shell`, see
 * shared_session.ts); starts, joins, ends and commands are audited.
 */
import type { Duplex, Readable, Writable } from "node:stream";
import type { Clock } from "../clock/mod.ts";
import { messageOf } from "../errors/mod.ts";
import { type Emitter, newAuditEvent, newSessionId, SessionRecorder } from "../events/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { SessionParticipantMode } from "../resource/mod.ts";
import { ConnectionGuard } from "../net/mod.ts";
import type { ServerChannel, SessionOpen, SessionRequest, SshConnection } from "../ssh/mod.ts";
import { type AgentForward, startAgentForward } from "./agent.ts";
import type { UserAccess } from "./authorize.ts";
import { buildSessionEnv, checkClientEnv } from "./env.ts";
import { assertCanRunAs, lookupOsUser, type OsUser } from "./os_user.ts";
import { type ExitStatus, spawnPty, type TerminalModes } from "./pty.ts";
import { isScpServerCommand } from "./scp.ts";
import {
  JOIN_MODE_ENV,
  JOIN_SESSION_ENV,
  type SessionRegistry,
  SharedSession,
} from "./shared_session.ts";
import { spawnExec } from "./spawn.ts";

/** Facts about this node that sessions need. */
export interface NodeIdentityInfo {
  hostId: string;
  nodeName: string;
  clusterName: string;
}

/** What every session handler shares (one per node). */
export interface SessionDeps {
  node: NodeIdentityInfo;
  emitter: Emitter;
  /** Directory for recordings in progress and awaiting upload. */
  recordingsDir: string;
  /** Sessions being recorded right now (their `.part` files are not stale crashes). */
  activeRecordings: Set<string>;
  /** Session channels open right now (diagnostics). */
  openSessions?: Set<string>;
  /** Called with a finished recording's session id (to upload it). */
  onRecordingDone: (sid: string) => void;
  clock: Clock;
  logger: Logger;
  /** Paths tried for the sftp server binary. */
  sftpServerPaths?: string[];
  /**
   * Admission control of the node's own listeners (forwarded agent sockets, remote forwards).
   * @default {a guard of the session's own}
   */
  guard?: ConnectionGuard;
  /**
   * Interactive sessions others may join (`tsh join`), tracked in auth.
   * @default {none: sessions are neither tracked nor joinable}
   */
  sessions?: SessionRegistry;
}

const SFTP_SERVER_PATHS = [
  "/usr/lib/openssh/sftp-server",
  "/usr/libexec/openssh/sftp-server",
  "/usr/lib/ssh/sftp-server",
  "/usr/libexec/sftp-server",
];

/** The common fields of this session's audit events. */
function baseFields(conn: SshConnection<UserAccess>, deps: SessionDeps, sid: string) {
  return {
    sid,
    user: conn.context.user,
    login: conn.context.login,
    server_id: deps.node.hostId,
    server_hostname: deps.node.nodeName,
    "addr.remote": `${conn.remoteAddr}:${conn.remotePort}`,
    "addr.local": `${conn.localAddr}:${conn.localPort}`,
    proto: "ssh",
  };
}

function emit(deps: SessionDeps, type: string, fields: Record<string, unknown>, failure = false) {
  void deps.emitter.emit(newAuditEvent(type, fields, {
    clock: deps.clock,
    clusterName: deps.node.clusterName,
    ...(failure ? { failure: true } : {}),
  }));
}

/**
 * Env request naming where a session was started from (`web`: the proxy's browser terminal);
 * recorded as `origin` in `session.start`.
 */
export const SESSION_ORIGIN_ENV = "TELEPORT_SESSION_ORIGIN";

/** Pipes `from` into `to` with backpressure (pauses `from` while `to` is full). */
function pipeWithBackpressure(from: Readable, to: Writable, onData?: (d: Uint8Array) => void) {
  from.on("data", (d: Uint8Array) => {
    onData?.(d);
    if (!to.write(d)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  });
}

function sendExit(ch: ServerChannel, status: ExitStatus) {
  try {
    if ("code" in status) ch.exit(status.code);
    else ch.exitSignal(status.signal);
    ch.end();
  } catch {
    // the client went away first
  }
}

/** Accepts a session channel and serves its requests. */
export function handleSessionOpen(open: SessionOpen<UserAccess>, deps: SessionDeps): void {
  const conn = open.conn;
  const access = conn.context;
  const sid = newSessionId();
  const log = deps.logger;
  let pty: { term: string; cols: number; rows: number; modes: TerminalModes } | undefined;
  const clientEnv: Record<string, string> = {};
  let running:
    | { resize(c: number, r: number): void; signal(name: string): boolean; hangUp(): void }
    | undefined;
  let started = false;
  let agent: AgentForward | undefined;
  /** Set by `env TELEPORT_SESSION=<sid>`: the shell request joins that session. */
  let joinSid: string | undefined;
  let joinMode: SessionParticipantMode = "peer";
  /** Set by `env TELEPORT_SESSION_ORIGIN=web`: the proxy's web terminal started the session. */
  let origin: "web" | undefined;
  let shared: SharedSession | undefined;

  const session = open.accept((req) => onRequest(req));
  deps.openSessions?.add(sid);
  void session.closed.then(() => {
    deps.openSessions?.delete(sid);
    running?.hangUp();
    void agent?.close();
  });

  async function onRequest(req: SessionRequest): Promise<void> {
    switch (req.type) {
      case "pty-req":
        if (!access.permitPty) {
          return req.reject({ stderr: "PTY allocation is not permitted by your certificate\r\n" });
        }
        pty = { term: req.term, cols: req.cols, rows: req.rows, modes: { ...req.modes } };
        return req.accept();
      case "env": {
        if (req.name === JOIN_SESSION_ENV) {
          joinSid = req.value;
          return req.accept();
        }
        if (req.name === SESSION_ORIGIN_ENV) {
          // Informational (audit `origin`); the client declares it, nothing is decided on it.
          if (req.value !== "web") return req.reject();
          origin = "web";
          return req.accept();
        }
        if (req.name === JOIN_MODE_ENV) {
          if (req.value !== "peer" && req.value !== "observer") return req.reject();
          joinMode = req.value;
          return req.accept();
        }
        const verdict = checkClientEnv(req.name, req.value);
        if (!verdict.accepted) {
          log.debug("Refused env {name} from {user}: {reason}", {
            name: req.name,
            user: access.user,
            reason: verdict.reason,
          });
          return req.reject();
        }
        clientEnv[req.name] = req.value;
        return req.accept();
      }
      case "window-change":
        // Served while the shell runs (lib/ssh hands requests over once the shell request is
        // answered). Before the program exists, the new size is kept for runOnPty.
        if (!isTerminalSize(req.cols, req.rows)) {
          log.debug("Refused window-change of session {sid} to {cols}x{rows}", {
            sid,
            cols: req.cols,
            rows: req.rows,
          });
          return req.reject();
        }
        running?.resize(req.cols, req.rows);
        if (pty !== undefined) {
          pty.cols = req.cols;
          pty.rows = req.rows;
        }
        return req.accept();
      case "signal":
        if (running === undefined) return req.reject();
        try {
          return running.signal(req.name) ? req.accept() : req.reject();
        } catch {
          return req.reject();
        }
      case "shell":
      case "exec":
      case "subsystem":
        if (started) return req.reject();
        started = true;
        if (joinSid !== undefined) return joinSession(req, joinSid);
        return await start(req);
      case "x11-req":
        return req.reject({ stderr: "X11 forwarding is not supported by this node\r\n" });
      case "auth-agent-req@openssh.com":
        return await forwardAgent(req);
    }
  }

  /**
   * auth-agent-req@openssh.com: a private agent socket for the session's programs. Stock ssh
   * sends it without asking for a reply, so a refusal is explained on the session's stderr.
   */
  async function forwardAgent(
    req: Extract<SessionRequest, { type: "auth-agent-req@openssh.com" }>,
  ): Promise<void> {
    if (!access.permitAgentForwarding) {
      log.info("Refused agent forwarding of {user} as {login}: forward_agent is not set", {
        user: access.user,
        login: access.login,
      });
      return req.reject({
        stderr: "Warning: agent forwarding is not permitted by your roles " +
          "(role option forward_agent)\r\n",
      });
    }
    if (agent !== undefined || started) return agent !== undefined ? req.accept() : req.reject();
    try {
      const forward = await startAgentForward({
        openChannel: (type) => conn.openChannel(type),
        user: await resolveUser(),
        guard: deps.guard ?? new ConnectionGuard({ logger: log }),
        logger: log,
      });
      agent = forward;
      // The session may have ended while the socket was set up.
      void session.closed.then(() => forward.close());
    } catch (err) {
      log.warn("Agent forwarding of {user} failed: {reason}", {
        user: access.user,
        reason: messageOf(err),
      });
      return req.reject({ stderr: `Warning: ${messageOf(err)}\r\n` });
    }
    return req.accept();
  }

  /** Joins running session `sid` (a shell request after `env TELEPORT_SESSION`). */
  function joinSession(
    req: Extract<SessionRequest, { type: "shell" | "exec" | "subsystem" }>,
    sid: string,
  ): void {
    const fields = { ...baseFields(conn, deps, sid), mode: joinMode };
    const target = deps.sessions?.get(sid);
    let why: string | undefined;
    if (req.type !== "shell") why = "Cannot join a session: send a shell request to join";
    else if (target === undefined) {
      why = `Cannot join session ${sid}: it is not running on this node`;
    } else if (
      !access.checker.canJoinSession(access.user, {
        owner: target.owner.user,
        ownerRoles: target.owner.roles,
        kind: "ssh",
      }, joinMode)
    ) {
      why = `Cannot join session ${sid} as ${joinMode}: it belongs to another user and no ` +
        "role of yours allows joining it (role option allow.join_sessions)";
    }
    if (why !== undefined || target === undefined) {
      // Refusals are logged; Teleport has no audit event code for a refused join.
      log.info("Refused {user} joining session {sid}: {reason}", {
        user: access.user,
        sid,
        reason: why,
      });
      return req.fail(why ?? "", { exitCode: 1 });
    }
    emit(deps, "session.join", fields);
    log.info("User {user} joined session {sid} as {mode}", {
      user: access.user,
      sid,
      mode: joinMode,
    });
    target.join(access.user, joinMode, req.accept(), () => emit(deps, "session.leave", fields));
  }

  async function resolveUser(): Promise<OsUser> {
    const user = await lookupOsUser(access.login);
    assertCanRunAs(user);
    return user;
  }

  async function start(
    req: Extract<SessionRequest, { type: "shell" | "exec" | "subsystem" }>,
  ): Promise<void> {
    const fields = baseFields(conn, deps, sid);
    let osUser: OsUser;
    try {
      osUser = await resolveUser();
    } catch (err) {
      const reason = `Failed to launch: ${messageOf(err)}`;
      emit(deps, "exec", {
        ...fields,
        command: req.type === "exec" ? req.command : "",
        exitCode: "255",
        exitError: reason,
      }, true);
      // A refused request's stderr text is dropped by OpenSSH: fail() shows it and exits 1.
      return req.fail(reason, { exitCode: 1 });
    }
    if (access.forceCommand !== undefined) {
      // OpenSSH semantics: the certificate's forced command replaces exec, shell and subsystem
      // requests alike; what the client asked for is only passed on in SSH_ORIGINAL_COMMAND.
      const original = req.type === "exec"
        ? req.command
        : req.type === "subsystem"
        ? req.name
        : undefined;
      return await runCommand(req, osUser, fields, access.forceCommand, original);
    }
    if (req.type === "subsystem") return await startSubsystem(req, osUser, fields);
    if (req.type === "exec" && !access.permitFileCopy && isScpServerCommand(req.command)) {
      const reason = "Cannot copy files with scp: file copy is not permitted by your roles " +
        "(ssh_file_copy: false)";
      log.info("Refused scp of {user} as {login}: ssh_file_copy is false", {
        user: access.user,
        login: access.login,
      });
      emit(
        deps,
        "exec",
        { ...fields, command: req.command, exitCode: "1", exitError: reason },
        true,
      );
      return req.fail(reason, { exitCode: 1 });
    }
    return await runCommand(req, osUser, fields, req.type === "exec" ? req.command : undefined);
  }

  /** Runs `command` (or the login shell) on a pty or pipes, audited from start to end. */
  async function runCommand(
    req: Extract<SessionRequest, { type: "shell" | "exec" | "subsystem" }>,
    osUser: OsUser,
    fields: ReturnType<typeof baseFields>,
    command: string | undefined,
    originalCommand?: string,
  ): Promise<void> {
    const env = sessionEnv(osUser, {
      ...(pty ? { term: pty.term } : {}),
      clientEnv,
      ...(originalCommand === undefined ? {} : { originalCommand }),
    });
    const startedAt = deps.clock.now();
    const interactive = pty !== undefined;
    emit(deps, "session.start", {
      ...fields,
      ...(origin === undefined ? {} : { origin }),
      interactive,
      ...(command !== undefined ? { command } : {}),
      ...(originalCommand !== undefined ? { original_command: originalCommand } : {}),
      ...(pty ? { size: `${pty.cols}:${pty.rows}` } : {}),
      session_recording: interactive ? "node" : "off",
    });
    let status: ExitStatus;
    try {
      status = pty !== undefined
        ? await runOnPty(req.accept(), osUser, env, command, pty)
        // A shell without a PTY runs the login shell reading commands from stdin.
        : await runPiped(req, osUser, env, command ?? `exec ${osUser.shell} -l`);
    } catch (err) {
      log.warn("Session {sid} of {user} failed to start: {reason}", {
        sid,
        user: access.user,
        reason: messageOf(err),
      });
      status = { code: 255 };
    }
    if (command !== undefined) {
      const failed = !("code" in status) || status.code !== 0;
      emit(deps, "exec", {
        ...fields,
        command,
        exitCode: "code" in status ? String(status.code) : "",
        ...("signal" in status ? { exitError: `signal ${status.signal}` } : {}),
      }, failed);
    }
    emit(deps, "session.end", {
      ...fields,
      interactive,
      session_start: startedAt.toISOString(),
      session_stop: deps.clock.now().toISOString(),
      participants: shared?.everyone ?? [access.user],
      ...("code" in status ? { exitCode: String(status.code) } : { exitSignal: status.signal }),
    });
  }

  async function runOnPty(
    ch: ServerChannel,
    osUser: OsUser,
    env: Record<string, string>,
    command: string | undefined,
    size: { cols: number; rows: number; modes: TerminalModes },
  ): Promise<ExitStatus> {
    // `size` is the session's live pty state: window-change requests served while the
    // recorder and the pty are set up update it, and are applied once the program exists.
    const initial = { cols: size.cols, rows: size.rows };
    const recorder = await SessionRecorder.create({
      dir: deps.recordingsDir,
      sid,
      clusterName: deps.node.clusterName,
      serverId: deps.node.hostId,
      user: access.user,
      login: access.login,
      cols: initial.cols,
      rows: initial.rows,
      clock: deps.clock,
      logger: log,
    });
    deps.activeRecordings.add(sid);
    let proc;
    try {
      proc = await spawnPty({
        user: osUser,
        env,
        size: initial,
        modes: size.modes,
        ...(command !== undefined ? { command } : {}),
        logger: log,
      });
    } catch (err) {
      ch.stderr.write(`Failed to start a shell: ${messageOf(err)}\r\n`);
      sendExit(ch, { code: 255 });
      await finishRecording(recorder);
      throw err;
    }
    const p = proc;
    const fields = baseFields(conn, deps, sid);
    running = {
      resize: (cols, rows) => {
        p.resize({ cols, rows });
        void recorder.resize(cols, rows);
        emit(deps, "resize", { ...fields, size: `${cols}:${rows}` });
      },
      signal: (name) => p.signal(name),
      hangUp: () => p.close(),
    };
    if (size.cols !== initial.cols || size.rows !== initial.rows) {
      running.resize(size.cols, size.rows);
    }
    const registry = deps.sessions;
    const sharing = registry === undefined ? undefined : new SharedSession({
      sid,
      owner: access,
      ownerChannel: ch,
      input: (d) => p.stream.write(d),
      clock: deps.clock,
      onChange: () => void registry.update(sid),
    });
    shared = sharing;
    if (sharing !== undefined) registry?.add(sharing);
    pipeWithBackpressure(p.stream, ch, (d) => {
      void recorder.print(d);
      sharing?.broadcast(d);
    });
    pipeWithBackpressure(ch, p.stream);
    const status = await p.exited;
    running = undefined;
    void registry?.remove(sid);
    sharing?.end(status);
    sendExit(ch, status);
    await finishRecording(recorder);
    return status;
  }

  async function finishRecording(recorder: SessionRecorder): Promise<void> {
    try {
      await recorder.close();
      deps.onRecordingDone(sid);
    } catch (err) {
      log.error("Cannot finish the recording of session {sid}: {error}", { sid, error: err });
    } finally {
      deps.activeRecordings.delete(sid);
    }
  }

  /** The environment of a program of this session (see env.ts). */
  function sessionEnv(
    osUser: OsUser,
    extra: { term?: string; clientEnv?: Record<string, string>; originalCommand?: string },
  ): Record<string, string> {
    const env = buildSessionEnv({
      user: osUser,
      ...extra,
      client: { addr: conn.remoteAddr, port: conn.remotePort },
      server: { addr: conn.localAddr, port: conn.localPort },
      sessionId: sid,
      teleportUser: access.user,
      hostId: deps.node.hostId,
      clusterName: deps.node.clusterName,
    });
    if (agent !== undefined) env.SSH_AUTH_SOCK = agent.socketPath;
    return env;
  }

  /** Runs `command` on pipes (exec without a PTY, a shell without one, sftp) to its exit. */
  async function runPiped(
    req: Extract<SessionRequest, { type: "shell" | "exec" | "subsystem" }>,
    osUser: OsUser,
    env: Record<string, string>,
    command: string,
    onAccepted?: () => void,
  ): Promise<ExitStatus> {
    const proc = await spawnExec({ user: osUser, env, command, logger: log });
    const ch = req.accept();
    onAccepted?.();
    wirePipes(ch, proc);
    running = {
      resize: () => {},
      signal: (name) => proc.signal(name),
      hangUp: () => proc.signal("HUP"),
    };
    const status = await proc.exited;
    running = undefined;
    sendExit(ch, status);
    return status;
  }

  async function startSubsystem(
    req: Extract<SessionRequest, { type: "subsystem" }>,
    osUser: OsUser,
    fields: ReturnType<typeof baseFields>,
  ): Promise<void> {
    const refuse = (why: string) => {
      emit(deps, "subsystem", { ...fields, name: req.name, error: why }, true);
      req.fail(why, { exitCode: 1 });
    };
    if (req.name !== "sftp") return refuse(`subsystem "${req.name}" is not supported`);
    if (!access.permitFileCopy) return refuse("file copy (sftp) is not permitted by your roles");
    const server = await findExecutable(deps.sftpServerPaths ?? SFTP_SERVER_PATHS);
    if (server === undefined) return refuse("sftp is not available on this node (no sftp-server)");
    await runPiped(
      req,
      osUser,
      sessionEnv(osUser, {}),
      `exec ${server}`,
      () => emit(deps, "subsystem", { ...fields, name: "sftp" }),
    );
  }
}

/** Whether a window-change size fits a terminal (TIOCSWINSZ and recordings: 0–65535). */
function isTerminalSize(cols: number, rows: number): boolean {
  return [cols, rows].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff);
}

/** Channel ↔ process pipes: stdin (with EOF), stdout, stderr. */
function wirePipes(
  ch: ServerChannel,
  proc: { stdin: Writable; stdout: Readable; stderr: Readable },
): void {
  pipeWithBackpressure(proc.stdout, ch);
  pipeWithBackpressure(proc.stderr, ch.stderr);
  pipeWithBackpressure(ch, proc.stdin);
  (ch as Duplex).on("end", () => proc.stdin.end());
  proc.stdin.on("error", () => {});
}

async function findExecutable(paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    try {
      const info = await Deno.stat(p);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return p;
    } catch {
      // next
    }
  }
  return undefined;
}
