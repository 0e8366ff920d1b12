/** `teleport configure`: prints a commented teleport.yaml that loads back. */
import { formatSampleConfig, type SampleConfigOptions } from "../../lib/config/mod.ts";
import { type FlagSpec, parseFlags, print, str, wantsHelp } from "../_common.ts";

const FLAGS: FlagSpec = {
  "cluster-name": { type: "string" },
  nodename: { type: "string" },
  "data-dir": { type: "string" },
  "public-addr": { type: "string" },
  output: { type: "string", short: "o" },
};

/** Runs `teleport configure`. */
export async function configureCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    print(`Usage: teleport configure [--cluster-name=NAME] [--nodename=NAME] [--data-dir=DIR]
                          [--public-addr=HOST:PORT] [-o FILE]

Prints a commented teleport.yaml (or writes it to FILE).`);
    return 0;
  }
  const p = parseFlags(args, FLAGS, "teleport configure");
  const opts: SampleConfigOptions = {};
  const cluster = str(p, "cluster-name");
  if (cluster !== undefined) opts.clusterName = cluster;
  const node = str(p, "nodename");
  if (node !== undefined) opts.nodeName = node;
  const dir = str(p, "data-dir");
  if (dir !== undefined) opts.dataDir = dir;
  const pub = str(p, "public-addr");
  if (pub !== undefined) opts.publicAddr = pub;
  const text = formatSampleConfig(opts);
  const out = str(p, "output");
  if (out === undefined) print(text);
  else {
    await Deno.writeTextFile(out, text, { mode: 0o600, createNew: true }).catch((err) => {
      if (err instanceof Deno.errors.AlreadyExists) {
        throw new Error(`Cannot write ${out}: it exists already; remove it or pick another file`);
      }
      throw err;
    });
    print(`Wrote ${out}`);
  }
  return 0;
}
