/** `tctl status`: cluster, version, CA fingerprints and the CA pin. */
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
  }
  const host = s.authorities.find((a) => a.type === "host");
  for (const pin of host?.pins ?? []) rows.push(["CA pin", pin]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  print(rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join("\n"));
  return 0;
}
