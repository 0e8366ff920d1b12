/**
 * The user CA keys a cluster member checks user certificates with: the ones it
 * knew at start, replaced whenever auth reports different ones (CA rotation).
 * Node and proxy both keep one; auth being unreachable leaves the known keys in use.
 */
import { parseAuthorizedKey } from "../ca/mod.ts";
import { type Resource, trustedKeys } from "../resource/mod.ts";

/** Inputs of {@link UserCaKeys}. */
export interface UserCaKeysOptions {
  /** Keys known so far (authorized_keys lines, e.g. from the identity file). */
  initial: string[];
  /** Reads the user CA resource from auth. */
  read: () => Promise<Resource>;
  /** Told the new lines after a change (to persist them, to log). */
  onChange?: (lines: string[]) => Promise<void> | void;
}

/** Current user CA keys with a refresh from auth. */
export class UserCaKeys {
  readonly #o: UserCaKeysOptions;
  #lines: string[];
  #blobs: Uint8Array[];

  constructor(o: UserCaKeysOptions) {
    this.#o = o;
    this.#lines = [...o.initial];
    this.#blobs = this.#lines.map((k) => parseAuthorizedKey(k).blob);
  }

  /** The key blobs to trust now. */
  get blobs(): Uint8Array[] {
    return this.#blobs;
  }

  /** Reads the CA from auth; adopts its trusted keys when they differ (and there are any). */
  async refresh(): Promise<void> {
    const ca = await this.#o.read();
    if (ca.kind !== "cert_authority") return;
    // During a rotation both generations are trusted (active first).
    const lines = trustedKeys(ca).ssh;
    if (lines.length === 0 || lines.join("\n") === this.#lines.join("\n")) return;
    this.#blobs = lines.map((k) => parseAuthorizedKey(k).blob);
    this.#lines = lines;
    await this.#o.onChange?.(lines);
  }
}
