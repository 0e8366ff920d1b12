// The single-page app: routes under /web, the header, and the pages (one module each).
import { getSession, logout, noteActivity, ping, toLogin } from "./api.js";
import { h, replace } from "./dom.js";

/** Path patterns → page module and the names of their parameters. */
const ROUTES = [
  { re: /^\/web\/login$/, page: "login", open: true },
  { re: /^\/web\/(invite|reset)\/([^/]+)$/, page: "setup", open: true, names: ["kind", "token"] },
  { re: /^\/web\/cluster\/([^/]+)\/resources$/, page: "resources", names: ["site"] },
  {
    re: /^\/web\/cluster\/([^/]+)\/console\/node\/([^/]+)\/([^/]+)$/,
    page: "terminal",
    names: ["site", "serverId", "login"],
    bare: true,
  },
  {
    re: /^\/web\/cluster\/([^/]+)\/console\/session\/([^/]+)$/,
    page: "terminal",
    names: ["site", "sid"],
    bare: true,
  },
  { re: /^\/web\/cluster\/([^/]+)\/sessions$/, page: "sessions", names: ["site"] },
  { re: /^\/web\/cluster\/([^/]+)\/recordings$/, page: "recordings", names: ["site"] },
  { re: /^\/web\/cluster\/([^/]+)\/session\/([^/]+)$/, page: "player", names: ["site", "sid"] },
  { re: /^\/web\/cluster\/([^/]+)\/audit$/, page: "audit", names: ["site"] },
  { re: /^\/web\/account$/, page: "account" },
];

const PAGES = {
  login: () => import("./login.js"),
  setup: () => import("./setup.js"),
  resources: () => import("./resources.js"),
  terminal: () => import("./terminal.js"),
  sessions: () => import("./sessions.js"),
  recordings: () => import("./recordings.js"),
  player: () => import("./player.js"),
  audit: () => import("./audit.js"),
  account: () => import("./account.js"),
};

function header(site, current) {
  const session = getSession();
  const link = (href, text, name) =>
    h("a", { href, text, "aria-current": current === name ? "page" : undefined });
  const c = `/web/cluster/${encodeURIComponent(site)}`;
  const out = h("button", { type: "button", class: "link", text: "Log out" });
  out.addEventListener("click", async () => {
    out.disabled = true;
    await logout().catch(() => {});
    location.assign("/web/login");
  });
  return [
    h("a", { href: "/web", class: "brand", text: "Teleport" }),
    h(
      "nav",
      { "aria-label": "Main" },
      link(`${c}/resources`, "Resources", "resources"),
      link(`${c}/sessions`, "Active sessions", "sessions"),
      link(`${c}/recordings`, "Recordings", "recordings"),
      link(`${c}/audit`, "Audit log", "audit"),
      link("/web/account", "Account", "account"),
    ),
    h("span", { class: "who" }, h("span", { class: "muted", text: session?.user ?? "" }), out),
  ];
}

function decodeParam(value) {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

async function start() {
  const path = location.pathname.replace(/\/+$/, "") || "/web";
  const main = document.getElementById("main");
  const top = document.getElementById("top");
  addEventListener("keydown", noteActivity, { passive: true });
  addEventListener("pointerdown", noteActivity, { passive: true });
  try {
    if (path === "/web") {
      if (!getSession()) return toLogin();
      const { cluster_name: site } = await ping();
      return location.replace(`/web/cluster/${encodeURIComponent(site)}/resources`);
    }
    const route = ROUTES.find((r) => r.re.test(path));
    if (!route) {
      document.title = "Not found · Teleport";
      replace(
        main,
        h("h1", { text: "Not found" }),
        h("p", {}, h("a", { href: "/web", text: "Home" })),
      );
      return;
    }
    const values = route.re.exec(path).slice(1).map(decodeParam);
    if (values.includes(null)) throw new Error("the address is not valid percent-encoding");
    const params = Object.fromEntries((route.names ?? []).map((n, i) => [n, values[i]]));
    if (!route.open && !getSession()) return toLogin();
    let site = params.site;
    if (!route.open) {
      site ??= (await ping()).cluster_name;
      if (route.bare) document.body.classList.add("bare");
      else replace(top, header(site, route.page));
    }
    const mod = await PAGES[route.page]();
    await mod.render(main, { ...params, site });
  } catch (err) {
    replace(
      main,
      h("h1", { text: "Something went wrong" }),
      h("p", { class: "notice error", role: "alert", text: err.message ?? String(err) }),
    );
  }
}

start();
