import assert from "node:assert/strict";
import { exchange, httpStatusOfResponse, isCompleteHttpResponse } from "./mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("isCompleteHttpResponse() knows where Content-Length and chunked bodies end", () => {
  const head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  assert.equal(isCompleteHttpResponse(enc(head + "abcd")), false);
  assert.equal(isCompleteHttpResponse(enc(head + "abcde")), true);
  const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
  assert.equal(isCompleteHttpResponse(enc(chunked)), false);
  assert.equal(isCompleteHttpResponse(enc(chunked + "0\r\n\r\n")), true);
  assert.equal(isCompleteHttpResponse(enc("HTTP/1.1 204 No Content\r\n\r\n")), true);
  assert.equal(isCompleteHttpResponse(enc("HTTP/1.1 200 OK\r\n\r\nuntil close")), false);
  assert.equal(httpStatusOfResponse(enc(head)), 200);
  assert.equal(httpStatusOfResponse(enc("SSH-2.0-x\r\n")), undefined);
});

Deno.test("exchange() reads until close, or until the response when asked, or the deadline", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serve = (async () => {
    for (let i = 0; i < 3; i++) {
      const conn = await listener.accept();
      conn.setNoDelay(true);
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      const req = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      if (req === "close") {
        await conn.write(enc("bye"));
        conn.close();
      } else if (req === "answer") {
        await conn.write(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        await conn.read(buf).catch(() => null); // keeps the connection until the client closes
        conn.close();
      } else {
        await conn.read(buf).catch(() => null); // never answers
        conn.close();
      }
    }
  })();
  const dial = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    conn.setNoDelay(true);
    return conn;
  };
  const closed = await exchange(await dial(), enc("close"));
  assert.deepEqual(closed, { response: enc("bye"), timedOut: false });
  const answered = await exchange(await dial(), enc("answer"), { untilHttpResponse: true });
  assert.equal(answered.timedOut, false);
  assert.equal(httpStatusOfResponse(answered.response), 200);
  const silent = await exchange(await dial(), enc("silent"), { deadlineMs: 50 });
  assert.deepEqual(silent, { response: new Uint8Array(0), timedOut: true });
  await serve;
});
