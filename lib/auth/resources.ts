/**
 * Generic resource access of the auth server (`tctl get/create/rm`): listing, reading,
 * creating and deleting resources by kind over the repositories, never with CA private keys,
 * and refusing kinds the cluster manages itself.
 */
import { BadParameterError, NotFoundError } from "../errors/mod.ts";
import { maskSecret } from "../log/mod.ts";
import type { Resource, ResourceKind } from "../resource/mod.ts";
import { type AuthContext, withCreatedBy } from "./_shared.ts";
import { publicAuthority } from "./authority.ts";
import type { AuthJoin } from "./join.ts";
import type { AuthUserTokens } from "./user_tokens.ts";

/** Options of {@link AuthResources}. */
export interface AuthResourcesOptions {
  /** Join tokens, dynamic and static (join.ts). */
  join: Pick<AuthJoin, "listTokens" | "deleteToken">;
  /** Deletes users with their tokens (user_tokens.ts). */
  userTokens: Pick<AuthUserTokens, "deleteUser">;
}

/** Resources by kind, as tctl sees them. */
export class AuthResources {
  readonly #ctx: AuthContext;
  readonly #join: AuthResourcesOptions["join"];
  readonly #userTokens: AuthResourcesOptions["userTokens"];

  constructor(ctx: AuthContext, opts: AuthResourcesOptions) {
    this.#ctx = ctx;
    this.#join = opts.join;
    this.#userTokens = opts.userTokens;
  }

  /** Lists resources of a kind; CA private keys are never included. */
  async listResources(kind: ResourceKind): Promise<Resource[]> {
    switch (kind) {
      case "user":
        return await this.#ctx.users.list();
      case "role":
        return await this.#ctx.roles.list();
      case "token":
        return await this.#join.listTokens();
      case "cert_authority":
        return (await this.#ctx.cas.list()).map(publicAuthority);
      case "node":
        return await this.#ctx.presence.listNodes();
      case "proxy":
        return await this.#ctx.presence.listProxies();
      case "session_tracker":
        return await this.#ctx.sessionTrackers.list();
    }
  }

  /** Reads one resource. */
  async getResource(kind: ResourceKind, name: string): Promise<Resource> {
    switch (kind) {
      case "user":
        return await this.#ctx.users.get(name);
      case "role":
        return await this.#ctx.roles.get(name);
      case "token": {
        const found = (await this.#join.listTokens()).find((t) => t.metadata.name === name);
        if (found === undefined) throw new NotFoundError(`token ${maskSecret(name)} is not found`);
        return found;
      }
      case "cert_authority": {
        if (name !== "host" && name !== "user") {
          throw new BadParameterError(`Cannot get cert_authority "${name}": use host or user`);
        }
        return publicAuthority(await this.#ctx.cas.get(name, this.#ctx.clusterName));
      }
      case "node":
        return await this.#ctx.presence.getNode(name);
      case "proxy":
        return await this.#ctx.presence.getProxy(name);
      case "session_tracker":
        return await this.#ctx.sessionTrackers.get(name);
    }
  }

  /** Creates (or with `upsert`, replaces) a user, role or token. */
  async putResource(resource: Resource, upsert: boolean, by?: string): Promise<void> {
    switch (resource.kind) {
      case "role":
        return upsert
          ? await this.#ctx.roles.upsert(resource)
          : await this.#ctx.roles.create(resource);
      case "user": {
        // Like Teleport's tctl create: no invite token here; `tctl users reset` issues one.
        for (const r of resource.spec.roles) await this.#ctx.roles.get(r);
        if (upsert) return await this.#ctx.users.upsert(resource);
        return await this.#ctx.users.create(withCreatedBy(resource, by, this.#ctx.clock));
      }
      case "token":
        return upsert
          ? await this.#ctx.tokens.upsert(resource)
          : await this.#ctx.tokens.create(resource);
      case "cert_authority":
      case "node":
      case "proxy":
      case "session_tracker":
        throw new BadParameterError(
          `Cannot create ${resource.kind} resources: they are managed by the cluster itself`,
        );
    }
  }

  /** Deletes a user, role or token. */
  async deleteResource(kind: ResourceKind, name: string): Promise<void> {
    switch (kind) {
      case "user":
        return await this.#userTokens.deleteUser(name);
      case "role":
        return await this.#ctx.roles.delete(name);
      case "token":
        return await this.#join.deleteToken(name);
      case "node":
        return await this.#ctx.presence.deleteNode(name);
      case "proxy":
        return await this.#ctx.presence.deleteProxy(name);
      case "session_tracker":
        return await this.#ctx.sessionTrackers.delete(name);
      case "cert_authority":
        throw new BadParameterError(
          "Cannot delete cert_authority resources: the cluster cannot work without its CAs",
        );
    }
  }
}
