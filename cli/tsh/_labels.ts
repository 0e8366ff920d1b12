/**
 * Label targets of `tsh ssh` (`tsh ssh root@env=prod,tier=db uptime`): the nodes whose labels
 * all match, and one command run on each of them in parallel with every output line prefixed
 * by the node's name, as Teleport's tsh does.
 */
import { type ClientContext, connectToNode } from "../../lib/client/mod.ts";
import { messageOf, NotFoundError } from "../../lib/errors/mod.ts";
import type { ServerResource } from "../../lib/resource/mod.ts";
import type { ClientChannel } from "../../lib/ssh/mod.ts";
import { CliError } from "../_common.ts";
import { writeAll } from "./_env.ts";
import { filterNodes } from "./ls.ts";

/** True when a `tsh ssh` target is labels (`key=value[,key=value…]`), not a node name. */
export function isLabelTarget(target: string): boolean {
  return target.includes("=");
}

/** Parses `key=value[,key=value…]`; CliError (exit 2) when a part is not `key=value`. */
export function parseLabelTarget(target: string): Array<[string, string]> {
  return target.split(",").map((part) => {
    const i = part.indexOf("=");
    if (i <= 0) {
      throw new CliError(
        `tsh ssh: "${part}" in "${target}" is not a label; use KEY=VALUE[,KEY=VALUE...]`,
        2,
      );
    }
    return [part.slice(0, i), part.slice(i + 1)] as [string, string];
  });
}

/** The nodes whose labels all match `target`, by name; NotFoundError when none does. */
export async function nodesMatching(
  ctx: ClientContext,
  target: string,
): Promise<ServerResource[]> {
  const filters = parseLabelTarget(target);
  const nodes = filterNodes(await ctx.api.listNodes(), filters);
  if (nodes.length === 0) {
    throw new NotFoundError(
      `Cannot find a node with labels ${target} (or you may not access one); run tsh ls`,
    );
  }
  return nodes;
}

/**
 * Splits a byte stream into lines, writing each as `[name] line\n` through `write`; the last
 * partial line is written by `flush`.
 */
export function linePrefixer(
  name: string,
  write: (line: Uint8Array) => Promise<void>,
): { push(chunk: Uint8Array): Promise<void>; flush(): Promise<void> } {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let partial = "";
  return {
    async push(chunk) {
      partial += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        await write(enc.encode(`[${name}] ${line}\n`));
      }
    },
    async flush() {
      partial += dec.decode();
      if (partial !== "") await write(enc.encode(`[${name}] ${partial}\n`));
      partial = "";
    },
  };
}

/** Serialises whole-line writes to one Deno writer, so lines of different nodes never mix. */
function serialWriter(out: { write(p: Uint8Array): Promise<number> }) {
  let last = Promise.resolve();
  return (line: Uint8Array): Promise<void> => {
    last = last.then(() => writeAll(out, line)).catch(() => {});
    return last;
  };
}

/** Pumps a channel stream through a prefixer; resolves at its end. */
function pumpPrefixed(
  stream: ClientChannel | ClientChannel["stderr"],
  p: ReturnType<typeof linePrefixer>,
): Promise<void> {
  return (async () => {
    for await (const chunk of stream) await p.push(chunk as Uint8Array);
    await p.flush();
  })().catch(() => {});
}

/**
 * Runs `command` on every node in parallel (no stdin, no terminal), each output line prefixed
 * with `[node-name] `. Returns 0 when it succeeded everywhere, else the exit code of the first
 * failing node in `nodes` order (255 when it could not be reached or died of a signal).
 */
export async function runOnNodes(
  ctx: ClientContext,
  nodes: ServerResource[],
  login: string,
  command: string,
): Promise<number> {
  const out = serialWriter(Deno.stdout);
  const err = serialWriter(Deno.stderr);
  const codes = await Promise.all(nodes.map(async (node) => {
    const name = node.spec.hostname || node.metadata.name;
    const errs = linePrefixer(name, err);
    let conn;
    try {
      conn = await connectToNode(ctx, { target: node.metadata.name, login, node });
    } catch (e) {
      await errs.push(new TextEncoder().encode(`ERROR: ${messageOf(e)}\n`));
      return 255;
    }
    try {
      const session = await conn.client.openSession();
      const ch = session.channel;
      const pumps = [pumpPrefixed(ch, linePrefixer(name, out)), pumpPrefixed(ch.stderr, errs)];
      if (!await session.exec(command)) {
        session.close();
        await errs.push(new TextEncoder().encode("ERROR: the node refused the command\n"));
        return 255;
      }
      ch.end();
      const status = await ch.exitStatus;
      await Promise.all(pumps);
      if (status.kind === "code") return status.code;
      await errs.push(
        new TextEncoder().encode(
          status.kind === "signal"
            ? `ERROR: the command died of signal ${status.signal}\n`
            : "ERROR: the session ended without an exit status\n",
        ),
      );
      return 255;
    } catch (e) {
      await errs.push(new TextEncoder().encode(`ERROR: ${messageOf(e)}\n`));
      return 255;
    } finally {
      await conn.close();
    }
  }));
  return codes.find((c) => c !== 0) ?? 0;
}
