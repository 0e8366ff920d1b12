/**
 * The one `dlopen` of glibc's `libc.so.6` for the whole process, plus the constants, C-string
 * helpers and wait-status decoding the PTY, exec and OS-user code share.
 *
 * The library is opened lazily on first use, so importing this file needs no `--allow-ffi`.
 * Symbols that older glibc releases lack (`posix_spawn_file_actions_addclosefrom_np` < 2.34,
 * `posix_spawn_file_actions_addchdir_np` < 2.29) are declared `optional: true` and are `null`
 * there; callers fall back. The constants are the Linux asm-generic values, identical on x86_64
 * and aarch64.
 *
 * @module
 */

import { NotImplementedError } from "../errors/mod.ts";

/** `open(2)` and friends. */
export const O_RDWR = 0o2;
/** Do not make the opened tty the controlling terminal. */
export const O_NOCTTY = 0o400;
/** Close the fd on exec. */
export const O_CLOEXEC = 0o2000000;
/** `ioctl` request that sets the window size (`struct winsize`). */
export const TIOCSWINSZ = 0x5414n;
/** `tcsetattr` action: apply now. */
export const TCSANOW = 0;
/** `fcntl` commands and the close-on-exec flag. */
export const F_GETFD = 1;
/** Set the fd flags. */
export const F_SETFD = 2;
/** Close-on-exec fd flag. */
export const FD_CLOEXEC = 1;
/** `waitpid` option: do not block. */
export const WNOHANG = 1;
/** `posix_spawnattr_setflags` flag bits. */
export const POSIX_SPAWN_SETSIGDEF = 0x04;
/** Apply the attribute's signal mask in the child. */
export const POSIX_SPAWN_SETSIGMASK = 0x08;
/** Run `setsid()` in the child (glibc ≥ 2.26). */
export const POSIX_SPAWN_SETSID = 0x80;
/** `errno` values used in decisions. */
export const ENOENT = 2;
/** Interrupted system call. */
export const EINTR = 4;
/** No child process (already reaped by someone else). */
export const ECHILD = 10;
/** Buffer too small (getpwnam_r and friends). */
export const ERANGE = 34;

/** Linux signal numbers by SSH-style name (no `SIG` prefix). */
export const SIGNALS: Readonly<Record<string, number>> = Object.freeze({
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
});

const SIGNAL_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(SIGNALS).map(([name, num]) => [num, name]),
);

/** SSH-style name (`"KILL"`) of a signal number, or `"SIG<n>"` for real-time signals. */
export function signalName(num: number): string {
  return SIGNAL_NAMES.get(num) ?? `SIG${num}`;
}

/** How a child ended: an exit code, or the SSH-style name of the signal that killed it. */
export type ExitStatus = { code: number } | { signal: string };

/** Decodes a `waitpid` status word (WIFEXITED / WIFSIGNALED). Stop statuses give undefined. */
export function decodeWaitStatus(status: number): ExitStatus | undefined {
  const low = status & 0x7f;
  if (low === 0) return { code: (status >> 8) & 0xff };
  if (low !== 0x7f) return { signal: signalName(low) };
  return undefined;
}

const SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // ioctl and open are variadic; on the supported ABIs the extra argument passes like a fixed one.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  tcgetpgrp: { parameters: ["i32"], result: "i32" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addclose: { parameters: ["buffer", "i32"], result: "i32" },
  posix_spawn_file_actions_addclosefrom_np: {
    parameters: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  // NSS lookups may block (LDAP, sssd): run them off the event loop. They return the error code.
  getpwnam_r: {
    parameters: ["buffer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  getgrnam_r: {
    parameters: ["buffer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The typed symbols of libc. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/**
 * The process-wide libc handle, opened on first call.
 *
 * @throws NotImplementedError when glibc's libc.so.6 cannot be loaded (musl, no --allow-ffi).
 */
export function libc(): Libc {
  if (lib === undefined) {
    try {
      lib = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch (err) {
      throw new NotImplementedError(
        `cannot load glibc "libc.so.6" through FFI (${
          err instanceof Error ? err.message : String(err)
        }); the SSH node service needs Linux with glibc and the --allow-ffi permission`,
        { cause: err },
      );
    }
  }
  return lib.symbols;
}

/** The calling thread's `errno`; meaningful right after a failed blocking FFI call only. */
export function errno(): number {
  const ptr = libc().__errno_location();
  if (ptr === null) return 0;
  return new Deno.UnsafePointerView(ptr).getInt32();
}

/** `strerror(code)` with the code appended, e.g. `"No such file or directory (errno 2)"`. */
export function describeErrno(code: number): string {
  const ptr = libc().strerror(code);
  const text = ptr === null ? "unknown error" : Deno.UnsafePointerView.getCString(ptr);
  return `${text} (errno ${code})`;
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s`. Callers must reject strings that contain NUL themselves. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** Reads a NUL-terminated string from the start of `buf`. */
export function fromCstr(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}

/**
 * A NULL-terminated `char *[]` for `strings`. The returned `keep` array holds the C strings and
 * must stay referenced until the native call that uses `array` has returned.
 */
export function cstrArray(
  strings: readonly string[],
): { array: BigUint64Array<ArrayBuffer>; keep: Uint8Array[] } {
  const keep = strings.map(cstr);
  const array = new BigUint64Array(keep.length + 1);
  keep.forEach((s, i) => {
    array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  return { array, keep };
}
