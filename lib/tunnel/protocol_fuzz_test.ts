/**
 * Fuzz tests of the tunnel's wire decoders: the `teleport-transport-dial` request and the
 * `discovery` message. Both come from the other end of an SSH connection, so every input must
 * end in a value or a BadParameterError.
 */
import assert from "node:assert/strict";
import { expectKinds, fuzz, invariant, type Rng } from "../testing/mod.ts";
import {
  decodeDialRequest,
  decodeDiscovery,
  encodeDialRequest,
  encodeDiscovery,
} from "./protocol.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** A JSON value of random shape: scalars, strings with odd characters, nesting. */
function jsonValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1e308, 2 ** 53 + 1, 0.5]);
    case 3:
      return rng.pick([
        "",
        "@local-node",
        "@remote-auth-server",
        "a b",
        "\u0000",
        "é",
        "x".repeat(1100),
      ]);
    case 4:
      return String.fromCharCode(...rng.bytes(rng.int(20)));
    case 5:
      return Array.from({ length: rng.int(4) }, () => jsonValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--) {
        o[rng.pick(["address", "server_id", "conn_type", "client_src_addr", "__proto__", "x"])] =
          jsonValue(rng, depth + 1);
      }
      return o;
    }
  }
}

/** Deeply nested arrays or objects, up to the payload limit. */
function nested(rng: Rng): Uint8Array {
  const depth = 1 + rng.int(9000);
  const [open, close] = rng.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
  return enc(open.repeat(depth) + "1" + (rng.chance(0.8) ? close.repeat(depth) : ""));
}

const DIAL_FIELDS = ["address", "server_id", "conn_type", "client_src_addr", "client_dst_addr"];

Deno.test("decodeDialRequest() returns a valid request or BadParameter for 100k inputs", async () => {
  await fuzz({
    name: "decodeDialRequest()",
    corpus: [
      enc('{"address":"@local-node","server_id":"abc.c1","conn_type":"node"}'),
      enc('{"address":"@remote-auth-server","client_src_addr":"10.0.0.1:5000","permit":null}'),
      enc("@remote-auth-server"),
      encodeDialRequest({ address: "127.0.0.1:3022", client_dst_addr: "127.0.0.2:22" }),
    ],
    dictionary: ['"', "{", "}", "[", ":", ",", "null", '"address"', "\\u0000", "\\ud800", " "],
    maxLength: 20_000,
    generators: [
      (rng) => {
        const o: Record<string, unknown> = { address: "@local-node" };
        for (const f of DIAL_FIELDS) if (rng.chance(0.5)) o[f] = jsonValue(rng);
        return enc(JSON.stringify(o));
      },
      (rng) => enc(JSON.stringify(jsonValue(rng))),
      nested,
    ],
    check(input) {
      const req = expectKinds(["BadParameter"], () => decodeDialRequest(input));
      if (req === undefined) return;
      invariant(/^[\x21-\x7e]{1,512}$/.test(req.address), "address is a printable token");
      invariant(typeof req.conn_type === "string", "conn_type is set");
      for (const f of DIAL_FIELDS) {
        const v = (req as unknown as Record<string, unknown>)[f];
        invariant(v === undefined || typeof v === "string", `${f} is a string`);
      }
      assert.deepEqual(decodeDialRequest(encodeDialRequest(req)), req);
    },
  });
});

Deno.test("decodeDiscovery() returns valid proxy IDs or BadParameter for 100k inputs", async () => {
  await fuzz({
    name: "decodeDiscovery()",
    corpus: [
      encodeDiscovery(["p1", "4f2a-9b.c"]),
      enc('{"proxies":[{"metadata":{"name":"a"},"gid":"x"},{"metadata":{"name":"a"}}]}'),
      enc('{"proxies":[]}'),
    ],
    dictionary: ['"', "{", "}", "[", "]", ":", ",", "null", '"metadata"', '"name"', '"proxies"'],
    maxLength: 20_000,
    generators: [
      (rng) => {
        const proxies = Array.from(
          { length: rng.int(5) },
          () => rng.chance(0.7) ? { metadata: { name: jsonValue(rng) } } : jsonValue(rng),
        );
        return enc(JSON.stringify(rng.chance(0.9) ? { proxies } : proxies));
      },
      nested,
    ],
    check(input) {
      const ids = expectKinds(["BadParameter"], () => decodeDiscovery(input));
      if (ids === undefined) return;
      invariant(Array.isArray(ids) && new Set(ids).size === ids.length, "unique IDs");
      for (const id of ids) invariant(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id), "valid ID");
      assert.deepEqual(decodeDiscovery(encodeDiscovery(ids)), ids);
    },
  });
});
