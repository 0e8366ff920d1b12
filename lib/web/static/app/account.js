// Account: change the password (old password + authenticator code).
import { api, getSession } from "./api.js";
import { field, h, notice, replace } from "./dom.js";

export function render(main) {
  document.title = "Account · Teleport";
  const session = getSession();
  const old = h("input", {
    type: "password",
    name: "old",
    autocomplete: "current-password",
    required: true,
  });
  const pw1 = h("input", {
    type: "password",
    name: "new",
    autocomplete: "new-password",
    minlength: 12,
    required: true,
  });
  const pw2 = h("input", {
    type: "password",
    name: "repeat",
    autocomplete: "new-password",
    minlength: 12,
    required: true,
  });
  const code = h("input", {
    name: "otp",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6,8}",
  });
  const status = notice();
  const submit = h("button", { type: "submit", class: "primary", text: "Change password" });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "pw-title" },
    h("h2", { id: "pw-title", text: "Change password" }),
    field("Current password", old),
    field("New password (at least 12 characters)", pw1),
    field("Repeat the new password", pw2),
    field("Code from the authenticator app", code),
    submit,
    status.el,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.hide();
    if (pw1.value.length < 12) {
      return status.show("The new password must be at least 12 characters long.");
    }
    if (pw1.value !== pw2.value) return status.show("The two new passwords do not match.");
    submit.disabled = true;
    try {
      const body = { old_password: old.value, new_password: pw1.value };
      if (code.value.trim()) body.second_factor_token = code.value.trim();
      await api("PUT", "/v1/webapi/users/password", body);
      for (const input of [old, pw1, pw2, code]) input.value = "";
      status.show("Password changed.", "ok");
    } catch (err) {
      status.show(`Cannot change the password: ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    main,
    h("h1", { text: "Account" }),
    h("p", {}, "Logged in as ", h("strong", { text: session?.user ?? "" })),
    form,
  );
}
