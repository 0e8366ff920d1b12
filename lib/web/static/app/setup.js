// Account setup from an invite or reset link: password, and the TOTP secret as a QR code.
import { api } from "./api.js";
import { field, formatTime, h, notice, replace } from "./dom.js";
import { drawQr } from "./qrcode.js";

export async function render(main, { kind, token }) {
  const title = kind === "reset" ? "Reset your password" : "Set up your account";
  document.title = `${title} · Teleport`;
  const status = notice();
  replace(
    main,
    h(
      "section",
      { class: "card narrow" },
      h("h1", { text: title }),
      h("p", { role: "status", text: "Checking the link…" }),
    ),
  );
  let info;
  try {
    info = await api(
      "GET",
      `/webapi/users/password/token/${encodeURIComponent(token)}`,
      undefined,
      { auth: false },
    );
  } catch (err) {
    status.show(`Cannot use this link: ${err.message}`);
    replace(main, h("section", { class: "card narrow" }, h("h1", { text: title }), status.el));
    return;
  }
  const pw1 = h("input", {
    type: "password",
    autocomplete: "new-password",
    minlength: 12,
    required: true,
  });
  const pw2 = h("input", {
    type: "password",
    autocomplete: "new-password",
    minlength: 12,
    required: true,
  });
  const code = h("input", {
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6,8}",
  });
  const submit = h("button", { type: "submit", class: "primary", text: "Set password" });
  let otp = null;
  if (info.otpauth_uri) {
    code.required = info.second_factor_required === true;
    const canvas = h("canvas", {
      class: "qr",
      role: "img",
      "aria-label": "QR code of the authenticator secret",
    });
    drawQr(canvas, info.otpauth_uri);
    otp = h(
      "section",
      { "aria-labelledby": "otp-title" },
      h("h2", { id: "otp-title", text: "Authenticator app" }),
      h("p", { text: "Scan this code with an authenticator app (TOTP), or type in the secret." }),
      canvas,
      h("p", {}, "Secret: ", h("code", { id: "otp-secret", text: info.otp_secret ?? "" })),
      h(
        "p",
        {},
        h("a", { href: info.otpauth_uri, text: "Open in an authenticator app on this device" }),
      ),
    );
  }
  const form = h(
    "form",
    { autocomplete: "off" },
    field("New password (at least 12 characters)", pw1),
    field("Repeat the password", pw2),
    otp
      ? field(
        "Code from the authenticator app",
        code,
        code.required ? null : h("small", { class: "muted", text: "(optional)" }),
      )
      : null,
    submit,
    status.el,
  );
  const card = h(
    "section",
    { class: "card narrow" },
    h("h1", { text: title }),
    h("p", {}, "User: ", h("strong", { id: "setup-user", text: info.user })),
    h("p", { class: "muted", text: `This link expires ${formatTime(info.expires)}.` }),
    otp,
    form,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.hide();
    if (pw1.value.length < 12) {
      return status.show("The password must be at least 12 characters long.");
    }
    if (pw1.value !== pw2.value) return status.show("The two passwords do not match.");
    const body = { token, password: pw1.value };
    if (code.value.trim() !== "") body.second_factor_token = code.value.trim();
    submit.disabled = true;
    try {
      const r = await api("PUT", "/webapi/users/password/token", body, { auth: false });
      pw1.value = "";
      pw2.value = "";
      history.replaceState(null, "", "/web/login");
      replace(
        main,
        h(
          "section",
          { class: "card narrow" },
          h("h1", { text: "Password set" }),
          h(
            "p",
            {},
            h("a", { href: "/web/login", text: "Log in to the web UI" }),
            " or from a terminal:",
          ),
          h("pre", { text: `tsh login --proxy=${location.host} --user=${r.user}` }),
        ),
      );
    } catch (err) {
      status.show(`Cannot set the password: ${err.message}`);
      submit.disabled = false;
    }
  });
  replace(main, card);
}
