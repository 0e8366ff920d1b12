/** JSON values in the backend, with expiry from metadata and revisions passed through. */
import type { Backend, Item, Key } from "../backend/mod.ts";
import { AlreadyExistsError, CompareFailedError, isKind, NotFoundError } from "../errors/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

export function decodeJson<T>(item: Item): T {
  return JSON.parse(dec.decode(item.value)) as T;
}

/** A typed view of one key prefix. `describe` names a value in errors ("user \"bob\""). */
export class JsonStore<T> {
  readonly #backend: Backend;
  readonly #prefix: Key;
  readonly #describe: (name: string) => string;

  constructor(backend: Backend, prefix: Key, describe: (name: string) => string) {
    this.#backend = backend;
    this.#prefix = prefix;
    this.#describe = describe;
  }

  key(name: string): Key {
    return [...this.#prefix, name];
  }

  async get(name: string): Promise<T & { revision: string }> {
    try {
      const item = await this.#backend.get(this.key(name));
      return { ...decodeJson<T>(item), revision: item.revision };
    } catch (err) {
      if (isKind(err, "NotFound")) throw new NotFoundError(`${this.#describe(name)} is not found`);
      throw err;
    }
  }

  async list(): Promise<T[]> {
    const items = await this.#backend.getRange({ prefix: this.#prefix });
    return items.filter((i) => i.key.length === this.#prefix.length + 1).map((i) =>
      decodeJson<T>(i)
    );
  }

  async create(name: string, value: T, expires?: Date): Promise<void> {
    try {
      await this.#backend.create({
        key: this.key(name),
        value: encodeJson(value),
        ...opt(expires),
      });
    } catch (err) {
      if (isKind(err, "AlreadyExists")) {
        throw new AlreadyExistsError(`${this.#describe(name)} already exists`, { cause: err });
      }
      throw err;
    }
  }

  /** Replaces the value only if its revision is still `revision` (CompareFailedError otherwise). */
  async compareAndSwap(name: string, value: T, revision: string, expires?: Date): Promise<void> {
    try {
      await this.#backend.compareAndSwap(revision, {
        key: this.key(name),
        value: encodeJson(value),
        ...opt(expires),
      });
    } catch (err) {
      if (isKind(err, "CompareFailed")) {
        throw new CompareFailedError(
          `${this.#describe(name)} has been changed or removed since it was read; read it again`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async put(name: string, value: T, expires?: Date): Promise<void> {
    await this.#backend.put({ key: this.key(name), value: encodeJson(value), ...opt(expires) });
  }

  async delete(name: string): Promise<void> {
    try {
      await this.#backend.delete(this.key(name));
    } catch (err) {
      if (isKind(err, "NotFound")) throw new NotFoundError(`${this.#describe(name)} is not found`);
      throw err;
    }
  }
}

function opt(expires: Date | undefined): { expires?: Date } {
  return expires === undefined ? {} : { expires };
}
