// Login: user, password and the authenticator's code (as the cluster's second factor asks).
import { getSession, login, ping, safeRedirect } from "./api.js";
import { field, h, notice, replace } from "./dom.js";

export async function render(main) {
  document.title = "Log in · Teleport";
  const redirect = safeRedirect(new URLSearchParams(location.search).get("redirect"));
  if (getSession()) return location.replace(redirect);
  let secondFactor = "otp";
  let cluster = "";
  try {
    const p = await ping();
    secondFactor = p.auth?.second_factor ?? "otp";
    cluster = p.cluster_name ?? "";
  } catch {
    // the form still works; the server checks the second factor
  }
  const wantsCode = secondFactor !== "off";
  const user = h("input", {
    name: "user",
    autocomplete: "username",
    required: true,
    autofocus: true,
  });
  const pass = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const code = h("input", {
    name: "otp",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6,8}",
    required: secondFactor === "on" || secondFactor === "otp",
  });
  const status = notice();
  const submit = h("button", { type: "submit", class: "primary", text: "Log in" });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", text: "Log in" }),
    cluster ? h("p", { class: "muted" }, "Cluster ", h("strong", { text: cluster })) : null,
    field("User", user),
    field("Password", pass),
    wantsCode
      ? field(
        "Code from the authenticator app",
        code,
        secondFactor === "optional"
          ? h("small", { class: "muted", text: "(if you set one up)" })
          : null,
      )
      : null,
    submit,
    status.el,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.hide();
    submit.disabled = true;
    try {
      await login(user.value.trim(), pass.value, wantsCode ? code.value.trim() : "");
      pass.value = "";
      location.assign(redirect);
    } catch (err) {
      status.show(`Cannot log in: ${err.message}`);
      submit.disabled = false;
      code.value = "";
      code.focus();
    }
  });
  replace(main, form);
}
