/**
 * `teleport install systemd`: writes the systemd unit (examples/systemd/teleport.service is its
 * output with the defaults).
 *
 * `teleport install links DIR`: makes `tsh`, `tctl` (and `teleport`) runnable by name for the
 * install form that runs this command:
 * - compiled binary (`deno compile`): symlinks to the binary; it picks the personality from
 *   the name it was started as;
 * - bundle (`deno run -A dist/teleport.js`) or source checkout (`deno run -A main.ts`): small
 *   sh launchers that exec the same deno with the same program and the personality as the
 *   first argument. A symlink cannot do it there: argv0 is `deno`, and a `.ts` symlink away
 *   from the checkout loses its deno.json (import map), so the launcher names the config.
 */
import { CONFIG_PATH } from "../../lib/config/mod.ts";
import { CliError, type FlagSpec, parseFlags, print, str, wantsHelp } from "../_common.ts";

/** Inputs of {@link systemdUnit}; every path absolute. */
export interface SystemdUnitOptions {
  /**
   * The teleport program (a compiled binary, or the launcher `teleport install links` writes).
   * @default {"/usr/local/bin/teleport"}
   */
  teleportPath?: string;
  /** @default {"/etc/teleport.yaml"} */
  configPath?: string;
  /** Read by systemd before the start (`-`: may be absent). @default {"/etc/default/teleport"} */
  envFile?: string;
  /** @default {"/run/teleport.pid"} */
  pidFile?: string;
  /** `LimitNOFILE`: every connection costs descriptors. @default {524288} */
  fdLimit?: number;
}

/** The systemd unit for `o` (see {@link SystemdUnitOptions} for the defaults). */
export function systemdUnit(o: SystemdUnitOptions = {}): string {
  const path = (flag: string, value: string) => {
    if (!value.startsWith("/") || /[\s"'\\$%;]/.test(value)) {
      throw new CliError(
        `Cannot write the systemd unit: ${flag} must be an absolute path without spaces, quotes, ` +
          `"$", "%", ";" or "\\", received ${JSON.stringify(value)}`,
        2,
      );
    }
    return value;
  };
  const teleport = path("--teleport-path", o.teleportPath ?? "/usr/local/bin/teleport");
  const config = path("--config", o.configPath ?? CONFIG_PATH);
  const envFile = path("--env-file", o.envFile ?? "/etc/default/teleport");
  const pidFile = path("--pid-file", o.pidFile ?? "/run/teleport.pid");
  const fdLimit = o.fdLimit ?? 524288;
  if (!Number.isSafeInteger(fdLimit) || fdLimit < 1024) {
    throw new CliError(
      `Cannot write the systemd unit: --fd-limit must be an integer of at least 1024, received ${fdLimit}`,
      2,
    );
  }
  return `[Unit]
Description=Teleport Service
After=network.target

[Service]
Type=simple
Restart=on-failure
RestartSec=5
# HTTPS_PROXY, NO_PROXY, TELEPORT_TUNNEL_PUBLIC_ADDR and other variables for teleport.
EnvironmentFile=-${envFile}
ExecStart=${teleport} start --config ${config} --pid-file=${pidFile}
# The process holds ${pidFile} locked while it runs (pkill -L -F finds only a live one).
PIDFile=${pidFile}
# Stop: SIGTERM closes every connection at once. To drain instead (no new connections; the
# running sessions end by themselves, up to teleport.drain_timeout):
#   systemctl kill --kill-whom=main -s QUIT teleport
# Reload (systemctl reload teleport): SIGHUP starts a new process that takes the ports over
# (SO_REUSEPORT) and the pid file; once it is ready this one drains and exits. Nothing is
# dropped; with a broken config the new process fails and this one keeps serving. Upgrade:
# replace the binary, then reload.
ExecReload=/bin/sh -c "exec pkill -HUP -L -F ${pidFile}"
# Every connection costs a descriptor (a pass-through to auth three). The process keeps a tenth
# of this limit in reserve and refuses connections before it runs out (connection_limits).
LimitNOFILE=${fdLimit}

[Install]
WantedBy=multi-user.target
`;
}

/** Marks a launcher written by this command (so a rerun may replace it). */
export const LAUNCHER_MARK = '# written by "teleport install links"';

/** How the running program was started. */
export interface InstallForm {
  /** True for a `deno compile` binary (`Deno.build.standalone`). */
  standalone: boolean;
  /** The binary: the compiled program, or the deno that runs the program. */
  execPath: string;
  /** The program run by deno (`Deno.mainModule`), a file: URL; unused when standalone. */
  mainModule: string;
  /** deno.json of a source checkout (beside main.ts), when there is one. */
  configPath?: string;
}

/** One file in the links directory. */
export type Launcher =
  | { name: string; kind: "symlink"; target: string }
  | { name: string; kind: "script"; text: string };

const PERSONALITIES = ["teleport", "tsh", "tctl"] as const;

/** Quotes `s` for sh. */
function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The launchers for `form`: symlinks for a compiled binary, sh scripts otherwise. */
export function planLaunchers(form: InstallForm): Launcher[] {
  if (form.standalone) {
    return PERSONALITIES.map((name) => ({ name, kind: "symlink", target: form.execPath }));
  }
  const url = new URL(form.mainModule);
  if (url.protocol !== "file:") {
    throw new CliError(
      `Cannot write launchers: the program was loaded from ${form.mainModule}, not a local file; run "teleport install links" from a checkout or a bundle on disk`,
    );
  }
  const program = decodeURIComponent(url.pathname);
  const runFlags = form.configPath !== undefined
    ? ["--config", shQuote(form.configPath)]
    : ["--unstable-kv"]; // a bundle carries no deno.json; the daemon's backend needs KV
  return PERSONALITIES.map((name) => {
    const personality = name === "teleport" ? "" : ` ${name}`;
    return {
      name,
      kind: "script",
      text: `#!/bin/sh\n${LAUNCHER_MARK}: runs ${program} as ${name}\nexec ${
        shQuote(form.execPath)
      } run -A ${runFlags.join(" ")} ${shQuote(program)}${personality} "$@"\n`,
    };
  });
}

/** The form of the running program, read from Deno. */
export function currentInstallForm(): InstallForm {
  const form: InstallForm = {
    standalone: Deno.build.standalone,
    execPath: Deno.execPath(),
    mainModule: Deno.mainModule,
  };
  const main = new URL(Deno.mainModule);
  if (!form.standalone && main.protocol === "file:" && main.pathname.endsWith(".ts")) {
    const config = decodeURIComponent(new URL("deno.json", main).pathname);
    try {
      if (Deno.statSync(config).isFile) form.configPath = config;
    } catch {
      // no deno.json beside the entry point: run without one
    }
  }
  return form;
}

/** True when `path` is ours to replace: a launcher we wrote or a symlink to `target`. */
async function isOurs(path: string, l: Launcher): Promise<boolean> {
  const st = await Deno.lstat(path);
  if (st.isSymlink) return l.kind === "symlink" && await Deno.readLink(path) === l.target;
  if (!st.isFile || st.size > 64 * 1024) return false;
  return (await Deno.readTextFile(path)).includes(LAUNCHER_MARK);
}

/** Writes `launchers` into `dir`; refuses to replace files it did not write unless `force`. */
export async function writeLaunchers(
  dir: string,
  launchers: Launcher[],
  force: boolean,
): Promise<string[]> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) {
      throw new CliError(`Cannot install links in ${dir}: it is not a directory`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new CliError(`Cannot install links in ${dir}: it does not exist; create it first`);
  }
  for (const l of launchers) {
    const path = `${dir}/${l.name}`;
    try {
      if (!force && !await isOurs(path, l)) {
        throw new CliError(
          `Cannot install links: ${path} exists and was not written by "teleport install links"; remove it or pass --force`,
        );
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  const written: string[] = [];
  for (const l of launchers) {
    const path = `${dir}/${l.name}`;
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    if (l.kind === "symlink") await Deno.symlink(l.target, tmp);
    else {
      await Deno.writeTextFile(tmp, l.text, { mode: 0o755 });
      await Deno.chmod(tmp, 0o755);
    }
    await Deno.rename(tmp, path);
    written.push(path);
  }
  return written;
}

const FLAGS: FlagSpec = {
  force: { type: "boolean" },
  "env-file": { type: "string" },
  "pid-file": { type: "string" },
  "fd-limit": { type: "string" },
  "teleport-path": { type: "string" },
  config: { type: "string", short: "c" },
  output: { type: "string", short: "o" },
};

const USAGE = `Usage: teleport install systemd [flags]
       teleport install links DIR [--force]

systemd: prints the systemd unit (or writes it with -o FILE), e.g.
  teleport install systemd -o /etc/systemd/system/teleport.service
  --teleport-path=PATH   the teleport program (default /usr/local/bin/teleport)
  -c, --config=FILE      teleport.yaml (default ${CONFIG_PATH})
  --env-file=FILE        environment file (default /etc/default/teleport)
  --pid-file=FILE        pid file (default /run/teleport.pid)
  --fd-limit=N           LimitNOFILE (default 524288)
  -o, --output=FILE      write the unit here instead of printing it

links: writes tsh, tctl and teleport into DIR (e.g. /usr/local/bin) so they run by name:
symlinks to a compiled binary, or sh launchers that run this deno with this program
(a bundle or a source checkout). Rerun it after moving the program or upgrading deno.
--force replaces files in DIR that it did not write.`;

/** Runs `teleport install ...`. */
export async function installCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    print(USAGE);
    return 0;
  }
  const p = parseFlags(args, FLAGS, "teleport install");
  const [what, dir, ...extra] = p.positionals;
  if (what === "systemd") {
    if (dir !== undefined) {
      throw new CliError(`teleport install systemd: unexpected argument "${dir}"`, 2);
    }
    const fd = str(p, "fd-limit");
    if (fd !== undefined && !/^\d+$/.test(fd)) {
      throw new CliError(
        `Cannot write the systemd unit: --fd-limit must be an integer, received "${fd}"`,
        2,
      );
    }
    const opt = <K extends keyof SystemdUnitOptions>(k: K, v: SystemdUnitOptions[K] | undefined) =>
      v === undefined ? {} : { [k]: v };
    const unit = systemdUnit({
      ...opt("teleportPath", str(p, "teleport-path")),
      ...opt("configPath", str(p, "config")),
      ...opt("envFile", str(p, "env-file")),
      ...opt("pidFile", str(p, "pid-file")),
      ...opt("fdLimit", fd === undefined ? undefined : Number(fd)),
    });
    const out = str(p, "output");
    if (out === undefined) {
      print(unit.trimEnd());
      return 0;
    }
    await Deno.writeTextFile(out, unit, { mode: 0o644 });
    print(
      `Wrote ${out}; then: systemctl daemon-reload && systemctl enable --now teleport`,
    );
    return 0;
  }
  if (what !== "links" || dir === undefined || dir === "" || extra.length > 0) {
    throw new CliError(
      `teleport install: expected "systemd" or "links DIR" (see "teleport install --help")`,
      2,
    );
  }
  const form = currentInstallForm();
  const written = await writeLaunchers(dir, planLaunchers(form), p.values.force === true);
  const how = form.standalone ? "symlinks to" : "launchers running";
  print(
    `Wrote ${written.join(", ")} (${how} ${
      form.standalone ? form.execPath : decodeURIComponent(new URL(form.mainModule).pathname)
    })`,
  );
  return 0;
}
