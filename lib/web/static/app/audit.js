// The audit log: events in a time range, filtered by type, a page at a time; each row opens
// to the whole event.
import { api, query, sitePath } from "./api.js";
import { field, formatTime, h, notice, pager, replace, toLocalInput } from "./dom.js";

const TYPES = [
  "user.login",
  "session.start",
  "session.end",
  "session.join",
  "session.leave",
  "exec",
  "port",
  "scp",
  "user.create",
  "user.password_change",
  "auth",
];

/** One line about an event, from its usual fields. */
function summary(e) {
  const parts = [];
  if (e.login) parts.push(`login ${e.login}`);
  if (e.server_hostname) parts.push(`on ${e.server_hostname}`);
  if (e.addr?.remote ?? e.remote_addr) parts.push(`from ${e.addr?.remote ?? e.remote_addr}`);
  if (e.method) parts.push(`method ${e.method}`);
  if (e.sid) parts.push(`session ${e.sid}`);
  if (e.success === false) parts.push(`failed${e.error ? ": " + e.error : ""}`);
  if (e.command) parts.push(`command ${e.command}`);
  return parts.join(", ");
}

export async function render(main, { site }) {
  document.title = "Audit log · Teleport";
  const now = new Date();
  const from = h("input", {
    type: "datetime-local",
    name: "from",
    value: toLocalInput(new Date(now.getTime() - 86_400_000)),
  });
  const to = h("input", {
    type: "datetime-local",
    name: "to",
    value: toLocalInput(new Date(now.getTime() + 3_600_000)),
  });
  const types = h("input", {
    name: "types",
    list: "event-types",
    placeholder: "all types (e.g. session.start, user.login)",
  });
  const list = h("datalist", { id: "event-types" }, TYPES.map((t) => h("option", { value: t })));
  const status = notice();
  const rowsEl = h("div", { class: "events", role: "list" });
  const pages = pager((key) => load(key));
  const form = h(
    "form",
    { class: "filters" },
    field("From", from),
    field("To", to),
    field("Event types", types),
    list,
    h("button", { type: "submit", text: "Apply" }),
  );
  replace(main, h("h1", { text: "Audit log" }), form, status.el, rowsEl, pages.el);

  async function load(startKey) {
    status.hide();
    const include = types.value.split(",").map((t) => t.trim()).filter((t) => t !== "");
    if (include.some((t) => !/^[a-z0-9_.-]+$/i.test(t))) {
      status.show(
        "Cannot filter by these types: write event types like session.start, separated by commas.",
      );
      return;
    }
    try {
      const answer = await api(
        "GET",
        sitePath(
          site,
          `/events/search${
            query({
              from: new Date(from.value).toISOString(),
              to: new Date(to.value).toISOString(),
              limit: 50,
              startKey,
              include: include.join(","),
            })
          }`,
        ),
      );
      const events = answer.events ?? [];
      replace(
        rowsEl,
        events.length === 0
          ? h("p", { class: "muted", text: "No events match." })
          : events.map((e) =>
            h(
              "details",
              { class: "event", role: "listitem", "data-type": e.event ?? "" },
              h(
                "summary",
                {},
                h("time", { datetime: e.time ?? "", text: formatTime(e.time) }),
                h("code", { class: "etype", text: e.event ?? "?" }),
                h("span", { class: "euser", text: e.user ?? "" }),
                h("span", { class: "muted esum", text: summary(e) }),
              ),
              h("pre", { text: JSON.stringify(e, null, 2) }),
            )
          ),
      );
      pages.update(answer.startKey, `${events.length} events`);
    } catch (err) {
      status.show(`Cannot search the audit log: ${err.message}`);
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    pages.reset();
    load("");
  });
  await load("");
}
