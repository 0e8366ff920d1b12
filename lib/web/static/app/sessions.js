// Active sessions: who is where, and a link to join one as an observer (new tab).
import { api, sitePath } from "./api.js";
import { formatTime, h, notice, replace } from "./dom.js";

export async function render(main, { site }) {
  document.title = "Active sessions · Teleport";
  const status = notice();
  const body = h("tbody");
  const refresh = h("button", { type: "button", text: "Refresh" });
  replace(
    main,
    h("h1", { text: "Active sessions" }),
    h("div", { class: "filters" }, refresh),
    status.el,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Node", "Login", "Started", "Participants", ""].map((t) =>
              h("th", { scope: "col", text: t })
            ),
          ),
        ),
        body,
      ),
    ),
  );
  async function load() {
    status.hide();
    try {
      const answer = await api("GET", sitePath(site, "/sessions"));
      const list = answer.sessions ?? [];
      replace(
        body,
        list.length === 0
          ? h("tr", {}, h("td", { colspan: 5, class: "muted", text: "No active sessions." }))
          : list.map((s) => {
            const sid = s.sid;
            const parties = (s.parties ?? []).map((p) => `${p.user} (${p.mode})`).join(", ");
            return h(
              "tr",
              { "data-sid": sid },
              h("td", {
                "data-label": "Node",
                text: s.server_hostname || s.server_id,
              }),
              h("td", { "data-label": "Login", text: s.login ?? "" }),
              h("td", {
                "data-label": "Started",
                text: formatTime(s.created),
              }),
              h("td", { "data-label": "Participants", text: parties }),
              h(
                "td",
                {},
                h("a", {
                  class: "button",
                  href: `/web/cluster/${encodeURIComponent(site)}/console/session/${
                    encodeURIComponent(sid)
                  }?${new URLSearchParams({ server_id: s.server_id ?? "", login: s.login ?? "" })}`,
                  target: "_blank",
                  rel: "noopener",
                  text: "Join as observer",
                }),
              ),
            );
          }),
      );
    } catch (err) {
      status.show(`Cannot list the active sessions: ${err.message}`);
    }
  }
  refresh.addEventListener("click", load);
  await load();
}
