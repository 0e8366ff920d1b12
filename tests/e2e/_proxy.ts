/**
 * Account setup through the proxy, as a new user does it: `tctl users add` prints the invite
 * URL, the user fetches the token details (otpauth URI), and sets a password with the first TOTP
 * code; then `tsh login` with password + TOTP. Shared by the proxy e2e tests and the benchmark.
 */
import * as OTPAuth from "otpauth";
import { run, runCli } from "./_helpers.ts";

/** The password every test user gets. */
export const TEST_PASSWORD = "correct horse battery staple";

/** Invites `user` with `tctl -c config`, enrolls TOTP, sets the password; returns the TOTP. */
export async function inviteAndEnroll(o: {
  config: string;
  webPort: number;
  user: string;
  roles: string;
  logins: string;
}): Promise<OTPAuth.TOTP> {
  const path = await addUserInvite(o);
  const token = path.slice(path.lastIndexOf("/") + 1);
  return await enrollInvite({ webPort: o.webPort, token, user: o.user });
}

/**
 * `tctl -c CONFIG users add USER --roles=… --logins=…`; returns the path of the invite link it
 * prints (`/web/invite/<token>`). Throws when tctl fails or prints no link.
 */
export async function addUserInvite(
  o: { config: string; user: string; roles: string; logins: string },
): Promise<string> {
  const add = await runCli([
    "tctl",
    "-c",
    o.config,
    "users",
    "add",
    o.user,
    `--roles=${o.roles}`,
    `--logins=${o.logins}`,
  ]);
  const m = /https:\/\/\S+(\/web\/invite\/[0-9a-f]+)/.exec(add.stdout);
  if (add.code !== 0 || m === null) {
    throw new Error(`tctl users add ${o.user} failed: ${add.stderr}${add.stdout}`);
  }
  return m[1]!;
}

/**
 * What the invite page does in a browser, through the proxy's JSON API: reads the token's
 * details (otpauth URI), sets the password with the first TOTP code; returns the TOTP.
 */
export async function enrollInvite(o: {
  webPort: number;
  token: string;
  user: string;
}): Promise<OTPAuth.TOTP> {
  const token = o.token;
  const base = `https://127.0.0.1:${o.webPort}`;
  const page = await run("curl", ["-sk", `${base}/web/invite/${token}`]);
  if (!/<html/i.test(page.out)) throw new Error(`no invite page: ${page.out}${page.err}`);
  const details = JSON.parse(
    (await run("curl", ["-sk", `${base}/webapi/users/password/token/${token}`])).out,
  );
  if (details.user !== o.user || !/^otpauth:\/\/totp\//.test(details.otpauth_uri ?? "")) {
    throw new Error(`unexpected token details: ${JSON.stringify(details)}`);
  }
  const totp = OTPAuth.URI.parse(details.otpauth_uri) as OTPAuth.TOTP;
  const put = await run("curl", [
    "-sk",
    "-X",
    "PUT",
    "-H",
    "Content-Type: application/json",
    "--data-binary",
    "@-",
    `${base}/webapi/users/password/token`,
  ], {
    stdin: JSON.stringify({ token, password: TEST_PASSWORD, second_factor_token: totp.generate() }),
  });
  if (JSON.parse(put.out).user !== o.user) {
    throw new Error(`setting the password failed: ${put.out}`);
  }
  return totp;
}

/**
 * `tsh login --insecure` with TELEPORT_HOME=`home`, using the code of the next time step (the
 * enrollment used up the current one; auth accepts one step of drift and refuses replays).
 */
export function tshLogin(o: {
  home: string;
  webPort: number;
  user: string;
  totp: OTPAuth.TOTP;
}): ReturnType<typeof runCli> {
  const code = o.totp.generate({ timestamp: Date.now() + 30_000 });
  return runCli(
    ["tsh", "login", `--proxy=127.0.0.1:${o.webPort}`, `--user=${o.user}`, "--insecure"],
    { env: { TELEPORT_HOME: o.home }, stdin: `${TEST_PASSWORD}\n${code}\n` },
  );
}
