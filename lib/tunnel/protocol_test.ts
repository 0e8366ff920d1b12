import assert from "node:assert/strict";
import {
  decodeDialRequest,
  decodeDiscovery,
  encodeDialRequest,
  encodeDiscovery,
  LOCAL_NODE_ADDR,
  proxyIdOf,
} from "./protocol.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("decodeDialRequest() reads Teleport's JSON DialReq and defaults conn_type", () => {
  const req = decodeDialRequest(enc(
    '{"address":"@local-node","server_id":"abc.c1","client_src_addr":"10.0.0.1:5000","permit":null}',
  ));
  assert.deepEqual(req, {
    address: LOCAL_NODE_ADDR,
    server_id: "abc.c1",
    conn_type: "node",
    client_src_addr: "10.0.0.1:5000",
  });
});

Deno.test("decodeDialRequest() takes a bare address as older agents sent", () => {
  assert.deepEqual(decodeDialRequest(enc("@remote-auth-server")), {
    address: "@remote-auth-server",
    conn_type: "node",
  });
});

Deno.test("encodeDialRequest() round-trips", () => {
  const req = { address: "@local-node", server_id: "h.c", conn_type: "node" };
  assert.deepEqual(decodeDialRequest(encodeDialRequest(req)), req);
});

Deno.test("decodeDialRequest() refuses malformed payloads with BadParameter", () => {
  for (
    const bad of [
      "",
      "{",
      '{"address":5}',
      '{"address":""}',
      '{"server_id":"x"}',
      '{"address":"a b"}',
      "two words",
      '{"address":"x","conn_type":{}}',
    ]
  ) {
    assert.throws(() => decodeDialRequest(enc(bad)), { name: "BadParameterError" }, bad);
  }
  assert.throws(() => decodeDialRequest(new Uint8Array([0xff, 0xfe])), {
    name: "BadParameterError",
  });
  assert.throws(() => decodeDialRequest(new Uint8Array(70_000).fill(65)), {
    name: "BadParameterError",
  });
});

Deno.test("encodeDiscovery()/decodeDiscovery() carry proxy IDs in Teleport's shape", () => {
  const data = encodeDiscovery(["p1", "p2"]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(data)), {
    proxies: [
      { version: "v2", metadata: { name: "p1" } },
      { version: "v2", metadata: { name: "p2" } },
    ],
  });
  assert.deepEqual(decodeDiscovery(data), ["p1", "p2"]);
  assert.deepEqual(
    decodeDiscovery(
      enc('{"proxies":[{"metadata":{"name":"a"},"gid":"x"},{"metadata":{"name":"a"}}]}'),
    ),
    ["a"],
  );
});

Deno.test("decodeDiscovery() refuses malformed messages", () => {
  for (
    const bad of [
      "x",
      "{}",
      '{"proxies":{}}',
      '{"proxies":[{}]}',
      '{"proxies":[{"metadata":{"name":"../x"}}]}',
    ]
  ) {
    assert.throws(() => decodeDiscovery(enc(bad)), { name: "BadParameterError" }, bad);
  }
});

Deno.test("proxyIdOf() takes the first principal up to the first dot", () => {
  assert.equal(proxyIdOf(["4f2a.cluster", "4f2a", "proxy.example.com"]), "4f2a");
  assert.equal(proxyIdOf([]), undefined);
});
