// Resources: the nodes the user's roles allow, searched and filtered on the server, one page
// at a time; each node has a Connect menu of its allowed logins (each opens a terminal tab).
import { api, query, sitePath } from "./api.js";
import { field, h, notice, pager, replace } from "./dom.js";

const PAGE_SIZE = 25;

/**
 * The label filter as typed (`env=prod, team=db`) → the `query` predicate the API takes
 * (`labels["env"] == "prod" && labels["team"] == "db"`); null when it cannot be read.
 */
export function labelQuery(text) {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const terms = [];
  for (const part of parts) {
    const m = /^([^=\s]+)\s*=\s*(.*)$/.exec(part);
    if (!m) return null;
    terms.push(`labels[${JSON.stringify(m[1])}] == ${JSON.stringify(m[2])}`);
  }
  return terms.join(" && ");
}

function connectMenu(site, node) {
  const c = `/web/cluster/${encodeURIComponent(site)}/console/node/${encodeURIComponent(node.id)}/`;
  if (!node.logins?.length) return h("span", { class: "muted", text: "No logins" });
  return h(
    "details",
    { class: "menu" },
    h("summary", { class: "button", text: "Connect", "aria-label": `Connect to ${node.hostname}` }),
    h(
      "ul",
      { role: "list" },
      node.logins.map((login) =>
        h(
          "li",
          {},
          h("a", {
            href: c + encodeURIComponent(login),
            target: "_blank",
            rel: "noopener",
            text: login,
          }),
        )
      ),
    ),
  );
}

/** Open Connect menus close on Escape (focus back on their button) and on a click elsewhere. */
function closeMenusOutside() {
  const openMenus = () => [...document.querySelectorAll("details.menu[open]")];
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    for (const menu of openMenus()) {
      menu.open = false;
      menu.querySelector("summary")?.focus();
    }
  });
  document.addEventListener("click", (ev) => {
    for (const menu of openMenus()) if (!menu.contains(ev.target)) menu.open = false;
  });
}

export async function render(main, { site }) {
  document.title = "Resources · Teleport";
  closeMenusOutside();
  const search = h("input", {
    type: "search",
    name: "search",
    placeholder: "hostname, address, label",
  });
  const labels = h("input", { name: "labels", placeholder: "env=prod, team=db" });
  const status = notice();
  const body = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", { class: "sr-only", text: "Nodes" }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Hostname", "Address", "Labels", "State", ""].map((t) =>
          h("th", { scope: "col", text: t })
        ),
      ),
    ),
    body,
  );
  const pages = pager((key) => load(key));
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("Search", search),
    field("Labels", labels),
    h("button", { type: "submit", text: "Apply" }),
  );

  async function load(startKey) {
    const q = labelQuery(labels.value);
    if (q === null) {
      status.show('Cannot read the label filter: write it as "name=value", separated by commas.');
      return;
    }
    status.hide();
    body.setAttribute("aria-busy", "true");
    try {
      const page = await api(
        "GET",
        sitePath(
          site,
          `/resources${
            query({ limit: PAGE_SIZE, startKey, search: search.value.trim(), query: q })
          }`,
        ),
      );
      const items = page.items ?? [];
      replace(
        body,
        items.length === 0
          ? h("tr", {}, h("td", { colspan: 5, class: "muted", text: "No nodes match." }))
          : items.map((node) =>
            h(
              "tr",
              { "data-node": node.hostname },
              h("td", { "data-label": "Hostname" }, h("strong", { text: node.hostname })),
              h("td", { "data-label": "Address", text: node.tunnel ? "Tunnel" : node.addr }),
              h(
                "td",
                { "data-label": "Labels" },
                (node.labels ?? []).map((l) => {
                  const chip = h("button", {
                    type: "button",
                    class: "chip",
                    text: `${l.name}: ${l.value}`,
                    title: "Filter by this label",
                  });
                  chip.addEventListener("click", () => {
                    const cur = labels.value.trim();
                    labels.value = (cur ? cur + ", " : "") + `${l.name}=${l.value}`;
                    pages.reset();
                    load("");
                  });
                  return chip;
                }),
              ),
              h(
                "td",
                { "data-label": "State" },
                h("span", {
                  class: node.online === false ? "badge off" : "badge on",
                  text: node.online === false ? "Offline" : "Online",
                }),
              ),
              h("td", {}, connectMenu(site, node)),
            )
          ),
      );
      pages.update(
        page.startKey,
        typeof page.totalCount === "number"
          ? `${page.totalCount} ${page.totalCount === 1 ? "node" : "nodes"}`
          : "",
      );
    } catch (err) {
      status.show(`Cannot list the resources: ${err.message}`);
    } finally {
      body.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    pages.reset();
    load("");
  });
  replace(
    main,
    h("h1", { text: "Resources" }),
    form,
    status.el,
    h("div", { class: "scroll" }, table),
    pages.el,
  );
  await load("");
}
