/**
 * Recognising the legacy scp protocol's server side in an SSH `exec` request, so a role with
 * `ssh_file_copy: false` refuses `scp -O` as it refuses the sftp subsystem (Teleport does the
 * same). The scp client asks the server to run `scp -t TARGET` (upload, "to") or
 * `scp -f SOURCE` (download, "from"), sometimes with more flags (`-r -p -d -v`), and some
 * wrappers put it behind `cd DIR &&`, `exec`, `env VAR=x` or `sh -c '…'`.
 *
 * This closes the file-copy protocols; it is not a sandbox: a user who may run arbitrary
 * commands can still move bytes with `cat`, which OpenSSH and Teleport do not prevent either.
 *
 * @module
 */

/** scp options that take an argument (OpenSSH scp(1)); what follows them is not a flag. */
const SCP_OPTIONS_WITH_ARGUMENT = new Set(["c", "D", "F", "i", "J", "l", "o", "P", "S", "X"]);

/** Programs that run the command given after their own options. */
const WRAPPERS = new Set(["exec", "command", "builtin", "nohup", "time", "env", "nice"]);

/** Shells whose `-c STRING` is looked into. */
const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"]);

/** Deepest `sh -c` nesting looked into. */
const MAX_DEPTH = 4;

/**
 * True when `command` (an SSH exec request, run by the node as `shell -c command`) invokes the
 * scp server: a program named `scp` (any directory) with `-t` or `-f` among its flags, in any
 * part of a `;`, `&&`, `||`, `|` or `&` list, after wrappers such as `exec`, `env` or `nice`,
 * and inside `sh -c '…'`.
 */
export function isScpServerCommand(command: string): boolean {
  return containsScpServer(command, 0);
}

function containsScpServer(command: string, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  for (const words of splitSimpleCommands(command)) {
    if (isScpServerWords(words, depth)) return true;
  }
  return false;
}

function isScpServerWords(words: string[], depth: number): boolean {
  let i = 0;
  // Leading assignments (`LANG=C scp -t x`) and wrapper programs with their options.
  for (;;) {
    while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!)) i++;
    const program = basename(words[i] ?? "");
    if (!WRAPPERS.has(program)) break;
    i++;
    while (i < words.length && words[i]!.startsWith("-") && words[i] !== "--") {
      // `env -u NAME`, `nice -n 10`, `command -p`: skip the option's argument too.
      const takesArgument = (program === "env" && /^-[uCS]$/.test(words[i]!)) ||
        (program === "nice" && words[i] === "-n");
      i += takesArgument ? 2 : 1;
    }
    if (words[i] === "--") i++;
  }
  const program = basename(words[i] ?? "");
  const args = words.slice(i + 1);
  if (SHELLS.has(program)) {
    const c = args.findIndex((a) => /^-[A-Za-z]*c[A-Za-z]*$/.test(a));
    return c >= 0 && c + 1 < args.length && containsScpServer(args[c + 1]!, depth + 1);
  }
  if (program !== "scp") return false;
  for (let a = 0; a < args.length; a++) {
    const arg = args[a]!;
    if (arg === "--" || !arg.startsWith("-") || arg === "-") return false;
    for (let f = 1; f < arg.length; f++) {
      const flag = arg[f]!;
      if (flag === "t" || flag === "f") return true;
      if (SCP_OPTIONS_WITH_ARGUMENT.has(flag)) {
        // `-ovalue` carries its argument; `-o value` takes the next word.
        if (f === arg.length - 1) a++;
        break;
      }
    }
  }
  return false;
}

/** The last path segment of a program name. */
function basename(program: string): string {
  return program.slice(program.lastIndexOf("/") + 1);
}

/**
 * Splits a POSIX shell command line into simple commands (word lists), honouring single and
 * double quotes and backslashes; `;`, `&`, `|`, `&&`, `||`, newlines, `(` and `)` separate
 * commands. Redirections stay words (they never name a program that matters here).
 */
export function splitSimpleCommands(command: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word = "";
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(word);
    word = "";
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (c === "\\") {
      if (i + 1 < command.length && command[i + 1] !== "\n") word += command[i + 1];
      i++;
      inWord = true;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      const stop = end < 0 ? command.length : end;
      word += command.slice(i + 1, stop);
      i = stop;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < command.length && command[i] !== '"') {
        if (command[i] === "\\" && i + 1 < command.length && '"\\$`\n'.includes(command[i + 1]!)) {
          i++;
        }
        word += command[i];
        i++;
      }
      inWord = true;
    } else if (";&|\n()".includes(c)) {
      endCommand();
    } else if (c === " " || c === "\t") {
      endWord();
    } else {
      word += c;
      inWord = true;
    }
  }
  endCommand();
  return commands;
}
