/** `tctl tokens add|ls|rm`: join tokens. */
import { formatDuration, parseDuration, type ProvisionToken } from "../../lib/resource/mod.ts";
import { formatAddr, TOKEN_TTL_MS } from "../../lib/config/mod.ts";
import { formatResourcesYaml } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  print,
  printResources,
  selfCommand,
  str,
} from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Flags of `tctl tokens`. */
export const TOKENS_FLAGS: FlagSpec = {
  type: { type: "string" },
  ttl: { type: "string" },
  value: { type: "string" },
  format: { type: "string" },
};

function expiresIn(t: ProvisionToken, now: Date): string {
  if (t.metadata.expires === undefined) return "never";
  const ms = new Date(t.metadata.expires).getTime() - now.getTime();
  return ms <= 0 ? "expired" : formatDuration(Math.round(ms / 1000) * 1000);
}

/** Runs `tctl tokens <verb>`. */
export async function tokensCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "add": {
      if (rest.length > 0) {
        throw new CliError(`tctl tokens add: unexpected argument "${rest[0]}"`, 2);
      }
      const type = str(p, "type");
      if (type === undefined) {
        throw new CliError("tctl tokens add: --type is required (node, proxy or node,proxy)", 2);
      }
      const ttlText = str(p, "ttl");
      const ttlMs = ttlText === undefined ? TOKEN_TTL_MS : parseDuration(ttlText, "--ttl");
      const value = str(p, "value");
      const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
      const ctx = await connect();
      const token = await ctx.client.createToken({
        roles: type.split(",").map((r) => r.trim()).filter((r) => r !== ""),
        ttlMs,
        ...(value === undefined ? {} : { token: value }),
      }) as ProvisionToken;
      const status = await ctx.client.status();
      const pins = status.authorities.find((a) => a.type === "host")?.pins ?? [];
      const authAddr = formatAddr(ctx.authPublicAddrs[0] ?? ctx.authAddr);
      if (fmt === "json") {
        print(JSON.stringify(
          {
            token: token.metadata.name,
            roles: token.spec.roles,
            expires: token.metadata.expires,
            ca_pins: pins,
            auth_server: authAddr,
          },
          null,
          2,
        ));
        return 0;
      }
      if (fmt === "yaml") {
        print(formatResourcesYaml([token]));
        return 0;
      }
      const self = selfCommand();
      const roles = token.spec.roles.map((r) => r.toLowerCase()).join(",");
      const ttl = formatDuration(ttlMs);
      print(`The invite token: ${token.metadata.name}
This token will expire in ${ttl}.

Run this on the new host to join the cluster:

> ${self} start \\
   --roles=${roles} \\
   --token=${token.metadata.name} \\
${pins.map((pin) => `   --ca-pin=${pin} \\`).join("\n")}
   --auth-server=${authAddr}

Please note:

  - This invitation token will expire in ${ttl}
  - ${authAddr} must be reachable from the new host${
        /^(127\.|localhost|\[?::1)/.test(authAddr)
          ? ` (it is a loopback address: set auth_service.public_addr so tctl prints one that others can reach)`
          : ""
      }`);
      return 0;
    }
    case "ls": {
      const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
      const ctx = await connect();
      const tokens = await ctx.client.listResources("token") as ProvisionToken[];
      const now = new Date();
      printResources(fmt, tokens, () =>
        formatTable(
          ["Token", "Type", "Expiry Time (UTC)", "Expires In"],
          tokens.map((t) => [
            t.metadata.name,
            t.spec.roles.join(","),
            t.metadata.expires?.replace(/\.\d+Z$/, "Z") ?? "never",
            expiresIn(t, now),
          ]),
        ));
      return 0;
    }
    case "rm": {
      if (rest.length !== 1) throw new CliError("tctl tokens rm: give exactly one token", 2);
      await (await connect()).client.deleteResource("token", rest[0]!);
      print(`Token ${rest[0]!.slice(0, 4)}… has been deleted`);
      return 0;
    }
    default:
      throw new CliError(
        `tctl tokens: unknown command "${verb ?? ""}" (use add, ls or rm)`,
        2,
      );
  }
}
