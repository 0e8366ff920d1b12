/**
 * CA rotation, Teleport's phases: a pure state machine over a {@link CertAuthority}.
 *
 * - `standby` → `init`: new keys are generated and trusted (additional_trusted_keys), not used.
 * - `init` → `update_clients`: the new keys become active (they sign), the old ones stay trusted.
 * - `update_clients` → `update_servers`: servers take certificates of the new keys.
 * - `update_servers` → `standby`: the old keys are dropped.
 * - `init`, `update_clients`, `update_servers` → `rollback`: the old keys sign again, the new
 *   ones stay trusted (servers that already moved stay reachable); `rollback` → `standby` drops
 *   the new keys.
 *
 * Semi-automatic mode starts at `init` and moves on by a schedule that splits the grace period
 * in three: `update_clients` after a third, `update_servers` after two, `standby` at its end.
 */
import { BadParameterError } from "../errors/mod.ts";
import {
  type CaKeySet,
  type CertAuthority,
  rotationOf,
  type RotationPhase,
} from "../resource/mod.ts";

/** Default grace period of semi-automatic rotation (Teleport: 48 h). */
export const DEFAULT_ROTATION_GRACE_PERIOD_MS = 48 * 3_600_000;

/** The phases that may follow each phase. */
const NEXT: Record<RotationPhase, RotationPhase[]> = {
  standby: ["init"],
  init: ["update_clients", "rollback"],
  update_clients: ["update_servers", "rollback"],
  update_servers: ["standby", "rollback"],
  rollback: ["standby"],
};

/** What to rotate to. */
export interface RotateOptions {
  /** Target phase; without it a semi-automatic rotation starts (at `init`). */
  phase?: RotationPhase;
  /** How the rotation runs. @default {"auto" without a phase, "manual" with one} */
  mode?: "auto" | "manual";
  /** Semi-automatic grace period. @default {DEFAULT_ROTATION_GRACE_PERIOD_MS} */
  gracePeriodMs?: number;
  now: Date;
  /** Makes the new generation of keys (with private parts), for `init`. */
  generateKeys: () => Promise<CaKeySet>;
}

/** The phases that may follow `phase`. */
export function nextPhases(phase: RotationPhase): readonly RotationPhase[] {
  return NEXT[phase];
}

/** Go-style duration text of whole milliseconds (`1h2m3s`, `500ms`). */
function durationText(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h > 0 ? `${h}h` : ""}${m > 0 ? `${m}m` : ""}${s > 0 || ms === 0 ? `${s}s` : ""}`;
}

/**
 * The CA after moving its rotation to the requested phase; throws BadParameterError when the
 * phase cannot follow the current one (the message names the phases that can).
 */
export async function rotateAuthority(
  ca: CertAuthority,
  o: RotateOptions,
): Promise<CertAuthority> {
  const current = rotationOf(ca);
  const type = ca.spec.type;
  const target = o.phase ?? "init";
  const mode = o.mode ?? (o.phase === undefined ? "auto" : "manual");
  if (o.phase === undefined && current.state === "in_progress") {
    throw new BadParameterError(
      `Cannot start a rotation of the ${type} CA: one is in phase ${current.phase} already; move it on with "tctl auth rotate --manual --type=${type} --phase=${
        NEXT[current.phase][0]
      }" or roll it back with --phase=rollback`,
    );
  }
  const allowed = NEXT[current.phase];
  if (!allowed.includes(target)) {
    throw new BadParameterError(
      `Cannot rotate the ${type} CA to phase ${target}: it is in phase ${current.phase}, which only ${
        allowed.join(" or ")
      } can follow`,
    );
  }
  const active = ca.spec.active_keys;
  const additional = ca.spec.additional_trusted_keys ?? { ssh: [], tls: [] };
  const spec = { ...ca.spec };
  const now = o.now.toISOString();
  const last = current.last_rotated === undefined ? {} : { last_rotated: current.last_rotated };
  switch (target) {
    case "init": {
      const grace = o.gracePeriodMs ?? DEFAULT_ROTATION_GRACE_PERIOD_MS;
      if (mode === "auto" && !(Number.isFinite(grace) && grace > 0)) {
        throw new BadParameterError(
          `Cannot start a rotation of the ${type} CA: the grace period must be positive`,
        );
      }
      spec.additional_trusted_keys = await o.generateKeys();
      const at = (part: number) => new Date(o.now.getTime() + grace * part / 3).toISOString();
      spec.rotation = {
        state: "in_progress",
        phase: "init",
        mode,
        started: now,
        ...(mode === "auto"
          ? {
            grace_period: durationText(grace),
            schedule: { update_clients: at(1), update_servers: at(2), standby: at(3) },
          }
          : {}),
        ...last,
      };
      break;
    }
    case "update_clients":
      spec.active_keys = additional;
      spec.additional_trusted_keys = active;
      spec.rotation = { ...current, phase: "update_clients" };
      break;
    case "update_servers":
      spec.rotation = { ...current, phase: "update_servers" };
      break;
    case "rollback":
      // Old keys sign again; the new ones stay trusted until standby.
      if (current.phase !== "init") {
        spec.active_keys = additional;
        spec.additional_trusted_keys = active;
      }
      spec.rotation = { ...current, phase: "rollback" };
      delete spec.rotation.schedule;
      break;
    case "standby":
      delete spec.additional_trusted_keys;
      spec.rotation = {
        state: "standby",
        phase: "standby",
        ...(current.phase === "update_servers" ? { last_rotated: now } : last),
      };
      break;
  }
  return { ...ca, spec };
}

/** The phase a semi-automatic rotation is due to move to at `now`, if any. */
export function dueAutoPhase(ca: CertAuthority, now: Date): RotationPhase | undefined {
  const r = rotationOf(ca);
  if (r.state !== "in_progress" || r.mode !== "auto" || r.schedule === undefined) return undefined;
  const t = now.getTime();
  const due = (at: string) => Date.parse(at) <= t;
  switch (r.phase) {
    case "init":
      return due(r.schedule.update_clients) ? "update_clients" : undefined;
    case "update_clients":
      return due(r.schedule.update_servers) ? "update_servers" : undefined;
    case "update_servers":
      return due(r.schedule.standby) ? "standby" : undefined;
    default:
      return undefined;
  }
}
