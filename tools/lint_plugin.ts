/**
 * Project lint plugin: keeps imports pointing down the layers of DESIGN.md §3.
 *
 * Rules (all under the `teleport/` prefix):
 *
 * - `layering`: in `lib/`, `cli/`, `main.ts` and `mod.ts`, a relative import must point to a
 *   strictly lower rank (see {@linkcode RANKS}); `lib/` never imports `cli/`; every `lib/`
 *   folder needs a rank.
 * - `deep-import`: code outside `lib/Y` imports only `lib/Y/mod.ts`.
 * - `npm-edges`: the npm packages in {@linkcode NPM_EDGES} are imported only where listed.
 * - `no-jsr`: no `jsr:` specifiers (JSR is unreachable here).
 *
 * Files under `tests/`, `bench/` and `tools/` are exempt from `layering` and `npm-edges`, not
 * from `deep-import` or `no-jsr`. Static imports, `export … from`, `import("literal")` and
 * `typeof import("literal")` types are all checked.
 *
 * Enabled in deno.json with `"lint": { "plugins": ["./tools/lint_plugin.ts"] }`.
 *
 * @module
 */

/** Rank of each `lib/` module: a module may import only modules of strictly lower rank. */
export const RANKS: Readonly<Record<string, number>> = Object.freeze({
  errors: 0,
  clock: 0,
  log: 1,
  testing: 1,
  metrics: 1,
  backend: 2,
  resource: 2,
  net: 2,
  ca: 2,
  identity: 3,
  services: 4,
  rbac: 4,
  events: 3,
  multiplex: 4,
  ssh: 4,
  authclient: 4,
  auth: 5,
  node: 5,
  tunnel: 5,
  proxy: 5,
  web: 5,
  client: 5,
  config: 6,
  service: 7,
});

/** Rank of everything under `cli/`. */
export const CLI_RANK = 8;
/** Rank of the root entry points {@linkcode ENTRY_FILES}. */
export const ENTRY_RANK = 9;
/** Root files that are entry points (rank {@linkcode ENTRY_RANK}). */
export const ENTRY_FILES: readonly string[] = Object.freeze(["main.ts", "mod.ts"]);
/** Top-level folders exempt from `layering` and `npm-edges`. */
export const EXEMPT_DIRS: readonly string[] = Object.freeze(["tests", "bench", "tools"]);

/**
 * npm packages that stay at the edges (house rule 9): package name → the folders (repo
 * relative, no trailing slash) allowed to import it, bare or as `npm:`.
 */
export const NPM_EDGES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  "ssh2": ["lib/ssh"],
  "@peculiar/x509": ["lib/ca", "lib/identity"],
  "yaml": ["lib/config", "lib/resource"],
  "@logtape/logtape": ["lib/log", "lib/service", "cli"],
  "otpauth": ["lib/auth"],
  "postgres": ["lib/backend", "lib/events"],
});

/** Where a repo-relative path sits in the layering. */
export type Unit =
  | { kind: "lib"; name: string }
  | { kind: "cli" }
  | { kind: "entry"; file: string }
  | { kind: "exempt"; dir: string }
  | { kind: "other" };

/** Classifies a normalized repo-relative path (`lib/auth/x.ts`, `main.ts`, …). */
export function classify(path: string): Unit {
  const parts = path.split("/");
  const [top] = parts;
  if (top === "lib" && parts.length >= 3) return { kind: "lib", name: parts[1]! };
  if (top === "cli" && parts.length >= 2) return { kind: "cli" };
  if (parts.length === 1 && ENTRY_FILES.includes(path)) return { kind: "entry", file: path };
  if (top !== undefined && parts.length >= 2 && EXEMPT_DIRS.includes(top)) {
    return { kind: "exempt", dir: top };
  }
  return { kind: "other" };
}

/** Human name and rank of a unit that takes part in layering, else `undefined`. */
export function rankOf(unit: Unit): { label: string; rank: number | undefined } | undefined {
  switch (unit.kind) {
    case "lib":
      return { label: `lib/${unit.name}`, rank: RANKS[unit.name] };
    case "cli":
      return { label: "cli/", rank: CLI_RANK };
    case "entry":
      return { label: unit.file, rank: ENTRY_RANK };
    default:
      return undefined;
  }
}

/** Normalizes `a/./b/../c` → `a/c`; returns `undefined` if the path climbs above the root. */
export function normalize(path: string): string | undefined {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else {
      out.push(part);
    }
  }
  return out.join("/");
}

/** Root of the repository: the parent of the folder holding this file. */
const ROOT = rootPath(new URL("../", import.meta.url));

function rootPath(url: URL): string | undefined {
  if (url.protocol !== "file:") return undefined;
  return decodeURIComponent(url.pathname).replace(/\/+$/, "");
}

/**
 * Turns a linted file name into a normalized repo-relative path. Relative names (as given to
 * `Deno.lint.runPlugin`) are taken as repo-relative; absolute names outside the repo give
 * `undefined`.
 */
export function repoRelative(
  filename: string,
  root: string | undefined = ROOT,
): string | undefined {
  let name = filename.replaceAll("\\", "/");
  if (name.startsWith("file://")) name = decodeURIComponent(new URL(name).pathname);
  if (name.startsWith("/")) {
    if (root === undefined || !name.startsWith(root + "/")) return undefined;
    name = name.slice(root.length + 1);
  }
  return normalize(name);
}

/** Resolves a relative (or `file:`/absolute) specifier to a repo-relative path. */
export function resolveSpecifier(
  fromPath: string,
  specifier: string,
  root: string | undefined = ROOT,
): string | undefined {
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    const dir = fromPath.includes("/") ? fromPath.slice(0, fromPath.lastIndexOf("/")) : "";
    return normalize(`${dir}/${specifier.split(/[?#]/)[0]}`);
  }
  if (specifier.startsWith("file://") || specifier.startsWith("/")) {
    return repoRelative(specifier.split(/[?#]/)[0]!, root);
  }
  return undefined;
}

/** Package name of a bare or `npm:` specifier (`npm:@a/b@1.2/x` → `@a/b`), else `undefined`. */
export function npmPackageName(specifier: string): string | undefined {
  let spec = specifier;
  if (spec.startsWith("npm:")) spec = spec.slice(4).replace(/^\/+/, "");
  else if (/^[a-z][a-z0-9+.-]*:/i.test(spec) || spec.startsWith(".") || spec.startsWith("/")) {
    return undefined;
  }
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? `${parts[0]}/${parts[1] ?? ""}` : parts[0]!;
  const at = name.indexOf("@", 1);
  return at === -1 ? name : name.slice(0, at);
}

/** Whether repo-relative `path` lies inside folder `dir` (repo-relative, no trailing slash). */
function isInside(path: string, dir: string): boolean {
  return path.startsWith(dir + "/");
}

/** One import site handed to every rule. */
export interface ImportSite {
  /** Repo-relative path of the importing file, `undefined` if outside the repo. */
  from: string | undefined;
  /** The specifier as written. */
  specifier: string;
}

/** Checks one import for `teleport/layering`; returns the messages. */
export function checkLayering(site: ImportSite): string[] {
  if (site.from === undefined) return [];
  const fromUnit = classify(site.from);
  const from = rankOf(fromUnit);
  if (from === undefined) return [];
  const target = resolveSpecifier(site.from, site.specifier);
  if (target === undefined) return [];
  const toUnit = classify(target);
  if (fromUnit.kind === "lib" && toUnit.kind === "cli") {
    return [`lib/${fromUnit.name} must not import cli/ (${target}); see DESIGN.md §3`];
  }
  if (fromUnit.kind === "lib" && toUnit.kind === "lib" && fromUnit.name === toUnit.name) return [];
  if (fromUnit.kind === "cli" && toUnit.kind === "cli") return [];
  if (fromUnit.kind === "entry" && toUnit.kind === "entry") return [];
  const to = rankOf(toUnit);
  if (to === undefined) return [];
  if (to.rank === undefined) return [noRank(to.label)];
  // An unranked importer is reported once per file (see the Program visitor).
  if (from.rank === undefined) return [];
  if (to.rank >= from.rank) {
    return [
      `upward import: ${from.label} (rank ${from.rank}) must not import ${to.label} ` +
      `(rank ${to.rank}); see DESIGN.md §3`,
    ];
  }
  return [];
}

function noRank(label: string): string {
  return `${label} has no rank; add it to tools/lint_plugin.ts and DESIGN.md`;
}

/** Checks one import for `teleport/deep-import`. */
export function checkDeepImport(site: ImportSite): string[] {
  if (site.from === undefined) return [];
  const target = resolveSpecifier(site.from, site.specifier);
  if (target === undefined) return [];
  const toUnit = classify(target);
  if (toUnit.kind !== "lib") return [];
  const moduleDir = `lib/${toUnit.name}`;
  if (isInside(site.from, moduleDir)) return [];
  if (target === `${moduleDir}/mod.ts`) return [];
  return [`deep import into ${moduleDir}: import ${moduleDir}/mod.ts instead (got ${target})`];
}

/** Checks one import for `teleport/npm-edges`. */
export function checkNpmEdges(site: ImportSite): string[] {
  if (site.from === undefined) return [];
  if (rankOf(classify(site.from)) === undefined) return [];
  const pkg = npmPackageName(site.specifier);
  if (pkg === undefined) return [];
  const allowed = NPM_EDGES[pkg];
  if (allowed === undefined) return [];
  if (allowed.some((dir) => isInside(site.from!, dir))) return [];
  return [`${pkg} may only be imported in ${allowed.join(", ")} (house rule 9)`];
}

/** Checks one import for `teleport/no-jsr`. */
export function checkNoJsr(site: ImportSite): string[] {
  const spec = site.specifier.trim();
  if (spec.startsWith("jsr:") || /^https?:\/\/jsr\.io\//.test(spec)) {
    return [
      `jsr: specifiers are unreachable here (${spec}); use an npm: package or node: built-in`,
    ];
  }
  return [];
}

/** Every rule: its id (without the plugin prefix) and the check it runs on each import. */
export const RULES: Readonly<Record<string, (site: ImportSite) => string[]>> = Object.freeze({
  "layering": checkLayering,
  "deep-import": checkDeepImport,
  "npm-edges": checkNpmEdges,
  "no-jsr": checkNoJsr,
});

/** The string value of a specifier node, if it is a plain literal. */
function literalValue(node: Deno.lint.Node | null | undefined): string | undefined {
  if (node === null || node === undefined) return undefined;
  if (node.type === "Literal" && typeof node.value === "string") return node.value;
  if (node.type === "TemplateLiteral" && node.expressions.length === 0) {
    return node.quasis[0]?.cooked;
  }
  if (node.type === "TSLiteralType") return literalValue(node.literal);
  return undefined;
}

function makeRule(name: string, check: (site: ImportSite) => string[]): Deno.lint.Rule {
  return {
    create(ctx) {
      const from = repoRelative(ctx.filename);
      const visit = (node: Deno.lint.Node, source: Deno.lint.Node | null | undefined) => {
        const specifier = literalValue(source);
        if (specifier === undefined) return;
        for (const message of check({ from, specifier })) ctx.report({ node, message });
      };
      return {
        Program(node) {
          if (name !== "layering" || from === undefined) return;
          const unit = classify(from);
          if (unit.kind === "lib" && RANKS[unit.name] === undefined) {
            ctx.report({ node, range: [0, 0], message: noRank(`lib/${unit.name}`) });
          }
        },
        ImportDeclaration: (node) => visit(node, node.source),
        ExportNamedDeclaration: (node) => visit(node, node.source),
        ExportAllDeclaration: (node) => visit(node, node.source),
        ImportExpression: (node) => visit(node, node.source),
        TSImportType: (node) => visit(node, node.argument),
      };
    },
  };
}

/** The `teleport` lint plugin. */
const plugin: Deno.lint.Plugin = {
  name: "teleport",
  rules: Object.fromEntries(
    Object.entries(RULES).map(([name, check]) => [name, makeRule(name, check)]),
  ),
};

export default plugin;
