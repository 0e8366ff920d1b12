// Account: change the password (old password + authenticator code), and see or replace the
// authenticator (TOTP) device: password + current code → a new secret as a QR code → a code
// from the new app confirms it (the old device keeps working until then).
import { api, getSession } from "./api.js";
import { field, formatTime, h, notice, replace } from "./dom.js";
import { drawQr } from "./qrcode.js";

const codeInput = (name) =>
  h("input", {
    name,
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6,8}",
  });

function passwordForm() {
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
  const code = codeInput("otp");
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
    if (pw1.value === old.value) {
      return status.show("The new password is the same as the current one.");
    }
    submit.disabled = true;
    try {
      const body = { old_password: old.value, new_password: pw1.value };
      if (code.value.trim()) body.second_factor_token = code.value.trim();
      await api("PUT", "/v1/webapi/users/password", body);
      for (const input of [old, pw1, pw2, code]) input.value = "";
      status.show("Password changed. Use the new password the next time you log in.", "ok");
    } catch (err) {
      status.show(`Cannot change the password: ${err.message}`);
      code.value = "";
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function deviceSection() {
  const state = h("p", { id: "otp-device", role: "status", text: "Loading…" });
  const status = notice();
  const password = h("input", {
    type: "password",
    name: "otp-password",
    autocomplete: "current-password",
    required: true,
  });
  const code = codeInput("otp-current");
  const codeField = field("Code from the current authenticator app", code);
  const start = h("button", { type: "submit", class: "primary", text: "Replace the device" });
  const startForm = h(
    "form",
    { "aria-label": "Start replacing the authenticator" },
    field("Current password", password),
    codeField,
    start,
  );
  const confirmArea = h("div");
  const section = h(
    "section",
    { class: "card narrow", "aria-labelledby": "otp-title" },
    h("h2", { id: "otp-title", text: "Authenticator app" }),
    state,
    startForm,
    confirmArea,
    status.el,
  );

  let hasDevice = false;
  const load = async () => {
    try {
      const { devices } = await api("GET", "/v1/webapi/mfa/devices");
      const totp = (devices ?? []).find((d) => d.type === "totp");
      hasDevice = totp !== undefined;
      state.textContent = hasDevice
        ? `An authenticator app (TOTP) is set up, added ${formatTime(totp.added)}.`
        : "No authenticator app is set up.";
      start.textContent = hasDevice ? "Replace the device" : "Add a device";
      codeField.hidden = !hasDevice;
      code.required = hasDevice;
    } catch (err) {
      state.textContent = `Cannot list the devices: ${err.message}`;
    }
  };

  const showConfirm = (r) => {
    const canvas = h("canvas", {
      class: "qr",
      role: "img",
      "aria-label": "QR code of the new authenticator secret",
    });
    drawQr(canvas, r.otpauth_uri);
    const newCode = codeInput("otp-new");
    newCode.required = true;
    const confirm = h("button", { type: "submit", class: "primary", text: "Confirm the device" });
    const cancel = h("button", { type: "button", text: "Cancel" });
    const form = h(
      "form",
      { "aria-label": "Confirm the new authenticator" },
      field("Code from the new authenticator app", newCode),
      h("p", {}, confirm, " ", cancel),
    );
    const done = () => {
      replace(confirmArea);
      startForm.hidden = false;
    };
    cancel.addEventListener("click", () => {
      done();
      status.show("Nothing changed: the current device stays.", "ok");
      start.focus();
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      status.hide();
      confirm.disabled = true;
      try {
        await api("PUT", "/v1/webapi/mfa/devices/totp", {
          second_factor_token: newCode.value.trim(),
        });
        done();
        await load();
        status.show("The new authenticator is active; the old one no longer works.", "ok");
        start.focus();
      } catch (err) {
        status.show(`Cannot add the device: ${err.message}`);
        newCode.value = "";
        newCode.focus();
      } finally {
        confirm.disabled = false;
      }
    });
    startForm.hidden = true;
    replace(
      confirmArea,
      h("p", {
        text: "Scan this code with the new authenticator app (TOTP), or type in the secret.",
      }),
      canvas,
      h("p", {}, "Secret: ", h("code", { id: "otp-secret", class: "secret", text: r.otp_secret })),
      h(
        "p",
        {},
        h("a", { href: r.otpauth_uri, text: "Open in an authenticator app on this device" }),
      ),
      h("p", { class: "muted", text: `Confirm before ${formatTime(r.expires)}.` }),
      form,
    );
    newCode.focus();
  };

  startForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.hide();
    start.disabled = true;
    try {
      const body = { password: password.value };
      if (code.value.trim()) body.second_factor_token = code.value.trim();
      const r = await api("POST", "/v1/webapi/mfa/devices/totp/replace", body);
      password.value = "";
      code.value = "";
      showConfirm(r);
    } catch (err) {
      status.show(`Cannot replace the device: ${err.message}`);
      code.value = "";
    } finally {
      start.disabled = false;
    }
  });
  load();
  return section;
}

export function render(main) {
  document.title = "Account · Teleport";
  const session = getSession();
  replace(
    main,
    h("h1", { text: "Account" }),
    h("p", {}, "Logged in as ", h("strong", { text: session?.user ?? "" })),
    passwordForm(),
    deviceSection(),
  );
}
