/** `tctl users add|reset|ls|rm`: local users. */
import type { UserTokenInfo } from "../../lib/authclient/mod.ts";
import { type User, validateName } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  print,
  printResources,
  str,
} from "../_common.ts";
import { formatAddr } from "../../lib/config/mod.ts";
import type { Connect, TctlContext } from "./_client.ts";

/** Flags of `tctl users`. */
export const USERS_FLAGS: FlagSpec = {
  roles: { type: "string" },
  logins: { type: "string" },
  format: { type: "string" },
};

function list(text: string | undefined): string[] {
  return (text ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The proxy address users open: from the config file, else a live proxy's announcement. */
async function proxyAddress(ctx: TctlContext): Promise<string> {
  if (ctx.proxyPublicAddr !== undefined) return formatAddr(ctx.proxyPublicAddr);
  try {
    const proxies = await ctx.client.listProxies();
    for (const p of proxies) {
      if (p.kind !== "proxy") continue;
      const addr = p.spec.public_addr ?? p.spec.addr;
      if (addr !== "") return addr;
    }
  } catch {
    // an older auth or no proxy yet: fall through to the placeholder
  }
  return "<proxy>:3080";
}

async function inviteText(ctx: TctlContext, t: UserTokenInfo, what: string): Promise<string> {
  const ttlMin = Math.max(1, Math.round((new Date(t.expires).getTime() - Date.now()) / 60_000));
  const ttl = ttlMin % 60 === 0 ? `${ttlMin / 60}h` : `${ttlMin}m`;
  const proxy = await proxyAddress(ctx);
  return `User "${t.user}" ${what}. Share this URL with the user to complete user setup, link is valid for ${ttl}:
https://${proxy}/web/invite/${t.token}

NOTE: Make sure ${proxy} points at a Teleport proxy which users can access.
Setup token: ${t.token}`;
}

/** Runs `tctl users <verb>`. */
export async function usersCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "add": {
      if (rest.length !== 1) throw new CliError("tctl users add: give exactly one user name", 2);
      const name = validateName(rest[0]!, "user");
      const roles = list(str(p, "roles"));
      if (roles.length === 0) {
        throw new CliError(
          "tctl users add: --roles is required (built-in roles: access, editor, auditor)",
          2,
        );
      }
      const logins = list(str(p, "logins"));
      const user: User = {
        kind: "user",
        version: "v2",
        metadata: { name },
        spec: { roles, traits: logins.length > 0 ? { logins } : {} },
      };
      const ctx = await connect();
      const out = await ctx.client.createUser(user);
      print(await inviteText(ctx, out.token, "has been created but requires a password"));
      return 0;
    }
    case "reset": {
      if (rest.length !== 1) throw new CliError("tctl users reset: give exactly one user name", 2);
      const name = validateName(rest[0]!, "user");
      const ctx = await connect();
      const token = await ctx.client.resetUser(name);
      print(await inviteText(ctx, token, "has been reset"));
      return 0;
    }
    case "ls": {
      const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
      const users = await (await connect()).client.listResources("user") as User[];
      printResources(fmt, users, () =>
        formatTable(
          ["User", "Roles", "Logins"],
          users.map((u) => [
            u.metadata.name,
            u.spec.roles.join(","),
            (u.spec.traits.logins ?? []).join(","),
          ]),
        ));
      return 0;
    }
    case "rm": {
      if (rest.length !== 1) throw new CliError("tctl users rm: give exactly one user name", 2);
      const name = validateName(rest[0]!, "user");
      await (await connect()).client.deleteResource("user", name);
      print(`User "${rest[0]}" has been deleted`);
      return 0;
    }
    default:
      throw new CliError(
        `tctl users: unknown command "${verb ?? ""}" (use add, reset, ls or rm)`,
        2,
      );
  }
}
