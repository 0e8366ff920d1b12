/** `tctl nodes ls`: nodes that heartbeat into the cluster. */
import type { ServerResource } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  printResources,
} from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Flags of `tctl nodes`. */
export const NODES_FLAGS: FlagSpec = { format: { type: "string" } };

/** Runs `tctl nodes ls`. */
export async function nodesCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  if (args[0] !== "ls") {
    throw new CliError(`tctl nodes: unknown command "${args[0] ?? ""}" (use ls)`, 2);
  }
  const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
  const nodes = await (await connect()).client.listResources("node") as ServerResource[];
  printResources(fmt, nodes, () =>
    formatTable(
      ["Host", "UUID", "Public Address", "Labels", "Version"],
      nodes.map((n) => [
        n.spec.hostname,
        n.metadata.name,
        n.spec.use_tunnel ? "⟵ Tunnel" : n.spec.addr,
        Object.entries(n.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(","),
        n.spec.version,
      ]),
    ));
  return 0;
}
