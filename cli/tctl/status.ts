/**
 * `tctl status`: cluster, version, CA fingerprints, each CA's rotation phase and the CA pins
 * (two during a host CA rotation: joining hosts need both).
 */
import type { CaRotation } from "../../lib/resource/mod.ts";
import { print } from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Prints the cluster status. */
export async function statusCommand(connect: Connect): Promise<number> {
  const ctx = await connect();
  const s = await ctx.client.status();
  const rows: Array<[string, string]> = [
    ["Cluster", s.cluster_name],
    ["Version", s.server_version],
  ];
  for (const ca of s.authorities) {
    const label = ca.type === "host" ? "Host CA" : "User CA";
    rows.push([label, `SSH ${ca.sshFingerprints.join(", ")}`]);
    rows.push(["", `TLS sha256 ${ca.tlsFingerprints.join(", ")}`]);
    rows.push(["", `rotation ${rotationText(ca.rotation)}`]);
  }
  const host = s.authorities.find((a) => a.type === "host");
  for (const pin of host?.pins ?? []) rows.push(["CA pin", pin]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  print(rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join("\n"));
  return 0;
}

/** One line about a CA's rotation. */
function rotationText(r: CaRotation | undefined): string {
  if (r === undefined || r.state === "standby") {
    return r?.last_rotated === undefined ? "standby" : `standby (last rotated ${r.last_rotated})`;
  }
  const next = r.mode === "auto" && r.schedule !== undefined
    ? {
      init: ` (update_clients at ${r.schedule.update_clients})`,
      update_clients: ` (update_servers at ${r.schedule.update_servers})`,
      update_servers: ` (standby at ${r.schedule.standby})`,
    }[r.phase as "init" | "update_clients" | "update_servers"] ?? ""
    : "";
  return `in progress, phase ${r.phase}, mode ${r.mode ?? "manual"}${next}`;
}
