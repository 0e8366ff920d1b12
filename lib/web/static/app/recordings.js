// Recordings: finished sessions in a time range, newest first, with a link to the player.
import { api, query, sitePath } from "./api.js";
import {
  field,
  formatDuration,
  formatTime,
  h,
  notice,
  pager,
  replace,
  toLocalInput,
} from "./dom.js";

export async function render(main, { site }) {
  document.title = "Recordings · Teleport";
  const now = new Date();
  const from = h("input", {
    type: "datetime-local",
    name: "from",
    value: toLocalInput(new Date(now.getTime() - 7 * 86_400_000)),
  });
  const to = h("input", {
    type: "datetime-local",
    name: "to",
    value: toLocalInput(new Date(now.getTime() + 3_600_000)),
  });
  const status = notice();
  const body = h("tbody");
  const pages = pager((key) => load(key));
  const form = h(
    "form",
    { class: "filters" },
    field("From", from),
    field("To", to),
    h("button", { type: "submit", text: "Apply" }),
  );
  replace(
    main,
    h("h1", { text: "Recordings" }),
    form,
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
            ["Started", "User", "Node", "Login", "Duration", ""].map((t) =>
              h("th", { scope: "col", text: t })
            ),
          ),
        ),
        body,
      ),
    ),
    pages.el,
  );
  async function load(startKey) {
    status.hide();
    try {
      const answer = await api(
        "GET",
        sitePath(
          site,
          `/events/search/sessions${
            query({
              from: new Date(from.value).toISOString(),
              to: new Date(to.value).toISOString(),
              limit: 25,
              startKey,
            })
          }`,
        ),
      );
      const events = answer.sessions ?? [];
      replace(
        body,
        events.length === 0
          ? h(
            "tr",
            {},
            h("td", { colspan: 6, class: "muted", text: "No recordings in this time range." }),
          )
          : events.map((e) => {
            const sid = e.sid;
            const start = e.session_start ?? e.time;
            const stop = e.session_stop ?? e.time;
            const ms = e.durationMs ?? new Date(stop).getTime() - new Date(start).getTime();
            return h(
              "tr",
              { "data-sid": sid },
              h("td", { "data-label": "Started", text: formatTime(start) }),
              h("td", { "data-label": "User", text: e.user ?? "" }),
              h("td", { "data-label": "Node", text: e.server_hostname ?? e.server_id ?? "" }),
              h("td", { "data-label": "Login", text: e.login ?? "" }),
              h("td", {
                "data-label": "Duration",
                text: Number.isFinite(ms) ? formatDuration(ms) : "",
              }),
              h(
                "td",
                {},
                h("a", {
                  class: "button",
                  href: `/web/cluster/${encodeURIComponent(site)}/session/${
                    encodeURIComponent(sid)
                  }`,
                  text: "Play",
                }),
              ),
            );
          }),
      );
      pages.update(answer.startKey, "");
    } catch (err) {
      status.show(`Cannot list the recordings: ${err.message}`);
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    pages.reset();
    load("");
  });
  await load("");
}
