/**
 * `tctl auth export --type=host|user|tls-host|tls-user` (every trusted key: both generations
 * while a rotation runs), `tctl auth rotate --type=host|user [--grace-period=48h]`
 * (semi-automatic) or `--manual --phase=PHASE`, and
 * `tctl auth sign --user=NAME --format=openssh --out=PREFIX [--ttl=12h]
 * [--public-key=FILE.pub]`: with --public-key an existing key (e.g. `ssh-keygen -t rsa`) is
 * certified and only `PREFIX-cert.pub` is written (PREFIX defaults to FILE without `.pub`).
 */
import {
  type CertAuthority,
  parseDuration,
  ROTATION_PHASES,
  rotationOf,
  type RotationPhase,
  trustedKeys,
} from "../../lib/resource/mod.ts";
import {
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  parseAuthorizedKey,
} from "../../lib/ca/mod.ts";
import { CERT_TTL_MS } from "../../lib/config/mod.ts";
import { CliError, type FlagSpec, type Parsed, print, str } from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Flags of `tctl auth`. */
export const AUTH_FLAGS: FlagSpec = {
  type: { type: "string" },
  user: { type: "string" },
  format: { type: "string" },
  out: { type: "string", short: "o" },
  ttl: { type: "string" },
  overwrite: { type: "boolean" },
  "public-key": { type: "string" },
  manual: { type: "boolean" },
  phase: { type: "string" },
  "grace-period": { type: "string" },
};

/** Reads an OpenSSH public key file for `tctl auth sign --public-key`. */
async function readPublicKey(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new CliError(
      `tctl auth sign: cannot read --public-key ${path}: ${
        err instanceof Error ? err.message : String(err)
      }`,
      2,
    );
  }
  const line = text.split("\n").map((l) => l.trim()).find((l) => l !== "" && !l.startsWith("#"));
  let key;
  try {
    key = parseAuthorizedKey(line ?? "");
  } catch (err) {
    throw new CliError(
      `tctl auth sign: --public-key ${path} is not an OpenSSH public key (${
        err instanceof Error ? err.message : String(err)
      }); pass the .pub file ssh-keygen wrote`,
      2,
    );
  }
  if (key.type.includes("-cert-v01@")) {
    throw new CliError(
      `tctl auth sign: --public-key ${path} is a certificate; pass the plain public key`,
      2,
    );
  }
  return formatAuthorizedKey(key.blob);
}

const EXPORT_TYPES = ["host", "user", "tls-host", "tls-user"] as const;

/** The known_hosts / TrustedUserCAKeys / PEM text of the cluster CAs. */
export function formatExport(cas: CertAuthority[], type: string | undefined): string {
  const lines: string[] = [];
  const byType = (t: "host" | "user") => cas.filter((c) => c.spec.type === t);
  // "type base64" without the stored comment.
  const keyOnly = (line: string) => formatAuthorizedKey(parseAuthorizedKey(line).blob);
  if (type === undefined || type === "host") {
    for (const ca of byType("host")) {
      for (const k of trustedKeys(ca).ssh) {
        lines.push(`@cert-authority *.${ca.spec.cluster_name} ${keyOnly(k)} type=host`);
      }
    }
  }
  if (type === undefined || type === "user") {
    for (const ca of byType("user")) {
      for (const k of trustedKeys(ca).ssh) {
        lines.push(`${keyOnly(k)} clustername=${ca.spec.cluster_name}&type=user`);
      }
    }
  }
  if (type === "tls-host" || type === "tls-user") {
    for (const ca of byType(type === "tls-host" ? "host" : "user")) {
      for (const k of trustedKeys(ca).tls) lines.push(k.trim());
    }
  }
  return lines.join("\n");
}

async function writeNew(
  path: string,
  text: string,
  mode: number,
  overwrite: boolean,
): Promise<void> {
  try {
    await Deno.writeTextFile(path, text, { mode, createNew: !overwrite });
    await Deno.chmod(path, mode);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new CliError(`tctl auth sign: ${path} exists already; remove it or pass --overwrite`);
    }
    throw err;
  }
}

/** Runs `tctl auth <verb>`. */
export async function authCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (rest.length > 0) throw new CliError(`tctl auth ${verb}: unexpected argument "${rest[0]}"`, 2);
  switch (verb) {
    case "export": {
      const type = str(p, "type");
      if (type !== undefined && !(EXPORT_TYPES as readonly string[]).includes(type)) {
        throw new CliError(
          `tctl auth export: --type must be one of ${EXPORT_TYPES.join(", ")}, not "${type}"`,
          2,
        );
      }
      const cas = await (await connect()).client.listResources("cert_authority") as CertAuthority[];
      print(formatExport(cas, type));
      return 0;
    }
    case "sign": {
      const user = str(p, "user");
      const publicKeyPath = str(p, "public-key");
      const out = str(p, "out") ??
        (publicKeyPath?.endsWith(".pub") ? publicKeyPath.slice(0, -4) : undefined);
      const format = str(p, "format") ?? "openssh";
      if (user === undefined) throw new CliError("tctl auth sign: --user is required", 2);
      if (out === undefined) throw new CliError("tctl auth sign: --out is required", 2);
      if (format !== "openssh") {
        throw new CliError(`tctl auth sign: --format must be openssh, not "${format}"`, 2);
      }
      const ttlText = str(p, "ttl");
      const ttlMs = ttlText === undefined ? CERT_TTL_MS : parseDuration(ttlText, "--ttl");
      const given = publicKeyPath === undefined ? undefined : await readPublicKey(publicKeyPath);
      const ctx = await connect();
      const key = given === undefined ? await generateSshKeyPair("ed25519") : undefined;
      const certs = await ctx.client.generateUserCerts({
        user,
        ssh_public_key: given ?? key!.authorizedKey,
        ttl_ms: ttlMs,
      });
      if (certs.sshCert === undefined) throw new Error("auth server returned no SSH certificate");
      const overwrite = p.values.overwrite === true;
      if (key !== undefined) {
        await writeNew(out, await formatOpenSshPrivateKey(key, user), 0o600, overwrite);
      }
      await writeNew(`${out}-cert.pub`, certs.sshCert + "\n", 0o644, overwrite);
      print(
        key === undefined
          ? `The certificate has been written to ${out}-cert.pub (valid until ${certs.expires})`
          : `The credentials have been written to ${out}, ${out}-cert.pub (valid until ${certs.expires})`,
      );
      return 0;
    }
    case "rotate":
      return await rotate(connect, p);
    default:
      throw new CliError(
        `tctl auth: unknown command "${verb ?? ""}" (use export, sign or rotate)`,
        2,
      );
  }
}

/** What the phase means for the operator, printed after each move. */
const PHASE_ADVICE: Record<RotationPhase, string> = {
  standby: "the rotation is complete; only the current keys are trusted",
  init: "new keys are trusted but not used yet; " +
    "hosts pick them up at their next CA refresh",
  update_clients: "new certificates are signed with the new keys; users should log in again " +
    "(tsh login) before the final standby",
  update_servers: "hosts re-issue their certificates with the new keys; " +
    "OpenSSH hosts need new host certificates now",
  rollback: "the old keys sign again; hosts go back to certificates of the old keys",
};

/** `tctl auth rotate`. */
async function rotate(connect: Connect, p: Parsed): Promise<number> {
  const type = str(p, "type");
  if (type !== "host" && type !== "user") {
    throw new CliError(
      `tctl auth rotate: --type must be host or user${type === undefined ? "" : `, not "${type}"`}`,
      2,
    );
  }
  const manual = p.values.manual === true;
  const phase = str(p, "phase");
  const graceText = str(p, "grace-period");
  if (manual && phase === undefined) {
    throw new CliError(
      `tctl auth rotate: --manual needs --phase (one of ${ROTATION_PHASES.join(", ")})`,
      2,
    );
  }
  if (!manual && phase !== undefined) {
    throw new CliError("tctl auth rotate: --phase needs --manual", 2);
  }
  if (phase !== undefined && !(ROTATION_PHASES as readonly string[]).includes(phase)) {
    throw new CliError(
      `tctl auth rotate: --phase must be one of ${ROTATION_PHASES.join(", ")}, not "${phase}"`,
      2,
    );
  }
  if (manual && graceText !== undefined) {
    throw new CliError(
      "tctl auth rotate: --grace-period is for semi-automatic rotation (without --manual)",
      2,
    );
  }
  let gracePeriodMs: number | undefined;
  if (graceText !== undefined) {
    try {
      gracePeriodMs = parseDuration(graceText, "--grace-period");
    } catch (err) {
      throw new CliError(`tctl auth rotate: ${err instanceof Error ? err.message : err}`, 2);
    }
    if (gracePeriodMs <= 0) {
      throw new CliError("tctl auth rotate: --grace-period must be positive", 2);
    }
  }
  const ca = await (await connect()).client.rotateCertAuthority(type, {
    ...(phase === undefined ? {} : { phase: phase as RotationPhase, mode: "manual" as const }),
    ...(gracePeriodMs === undefined ? {} : { gracePeriodMs }),
  }) as CertAuthority;
  const r = rotationOf(ca);
  const lines = [
    `Updated rotation phase of the ${type} CA to "${r.phase}": ${PHASE_ADVICE[r.phase]}`,
  ];
  if (r.schedule !== undefined && r.phase === "init") {
    lines.push(
      `Semi-automatic rotation (grace period ${r.grace_period}): update_clients at ${r.schedule.update_clients}, update_servers at ${r.schedule.update_servers}, standby at ${r.schedule.standby}`,
    );
  }
  if (r.phase !== "standby" && r.phase !== "rollback") {
    lines.push(`Check the phase with "tctl status"; hosts joining now need both CA pins it shows`);
  }
  print(lines.join("\n"));
  return 0;
}
