import assert from "node:assert/strict";
import { isScpServerCommand, splitSimpleCommands } from "./scp.ts";

Deno.test("isScpServerCommand() detects the scp server when -t or -f is among its flags", () => {
  for (
    const command of [
      "scp -t .",
      "scp -f /etc/hostname",
      "scp -t -- target.txt",
      "scp -v -r -p -t -- dir",
      "scp -pt .",
      "scp -rf dir",
      "/usr/bin/scp -t x",
      "./scp -f x",
      "scp -o Foo=bar -t x",
      "scp -oFoo=bar -f x",
    ]
  ) {
    assert.equal(isScpServerCommand(command), true, command);
  }
});

Deno.test("isScpServerCommand() looks behind cd &&, lists, wrappers and sh -c", () => {
  for (
    const command of [
      "cd /tmp && scp -t .",
      "cd '/tmp/a dir' && scp -f 'a file'",
      "true; scp -t x",
      "false || scp -f x",
      "echo | scp -t x",
      "(cd /tmp; scp -t x)",
      "exec scp -t x",
      "LANG=C scp -t x",
      "env -u HOME LANG=C scp -f x",
      "nice -n 10 scp -t x",
      "command -p scp -t x",
      "sh -c 'scp -t x'",
      'bash -lc "cd /tmp && exec scp -f y"',
      "s\\cp -t x",
      "'scp' -t x",
      "scp\n-t x".replace("\n", " "),
      "echo hi\nscp -t x",
    ]
  ) {
    assert.equal(isScpServerCommand(command), true, command);
  }
});

Deno.test("isScpServerCommand() is false for other commands and scp as a client", () => {
  for (
    const command of [
      "ls -t",
      "tar -cf - .",
      "scp file host:dir",
      "scp -r dir host:",
      "scp -o t -r a b",
      "scp -P 22 -i key a host:b",
      "scp -- -t",
      "echo scp -t x",
      "grep -f patterns scp",
      "sh -c 'echo scp -t'",
      "sftp -b batch host",
      "scpx -t x",
      "",
    ]
  ) {
    assert.equal(isScpServerCommand(command), false, command);
  }
});

Deno.test("splitSimpleCommands() honours quotes, escapes and separators", () => {
  assert.deepEqual(splitSimpleCommands(`a 'b c' "d \\"e\\"" f\\ g && h|i;j`), [
    ["a", "b c", 'd "e"', "f g"],
    ["h"],
    ["i"],
    ["j"],
  ]);
  assert.deepEqual(splitSimpleCommands("''"), [[""]]);
  assert.deepEqual(splitSimpleCommands("  "), []);
});
