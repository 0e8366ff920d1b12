/**
 * Applies SSH `pty-req` terminal modes (RFC 4254 §8, as decoded by ssh2: `{ VINTR: 3, ECHO: 1,
 * … }`) to a Linux `struct termios`.
 *
 * Layout of glibc's `struct termios` on Linux (x86_64 and aarch64): c_iflag, c_oflag, c_cflag,
 * c_lflag (u32 each at 0, 4, 8, 12), c_line (u8 at 16), c_cc[32] (at 17), then the speeds.
 * Speeds (`TTY_OP_ISPEED`/`OSPEED`) and modes Linux lacks (VDSUSP, VSTATUS, VFLUSH) are ignored.
 *
 * @module
 */

import { describeErrno, errno, libc, TCSANOW } from "./_libc.ts";

type Field = "iflag" | "oflag" | "cflag" | "lflag";

const FIELD_OFFSET: Record<Field, number> = { iflag: 0, oflag: 4, cflag: 8, lflag: 12 };
const CC_OFFSET = 17;
const TERMIOS_SIZE = 64; // 60 on Linux, rounded up
const CSIZE = 0o60;

/** c_cc indexes by SSH mode name. */
const CC: Readonly<Record<string, number>> = {
  VINTR: 0,
  VQUIT: 1,
  VERASE: 2,
  VKILL: 3,
  VEOF: 4,
  VSWTCH: 7,
  VSTART: 8,
  VSTOP: 9,
  VSUSP: 10,
  VEOL: 11,
  VREPRINT: 12,
  VDISCARD: 13,
  VWERASE: 14,
  VLNEXT: 15,
  VEOL2: 16,
};

/** Flag bits by SSH mode name. */
const FLAGS: Readonly<Record<string, [Field, number]>> = {
  IGNPAR: ["iflag", 0o4],
  PARMRK: ["iflag", 0o10],
  INPCK: ["iflag", 0o20],
  ISTRIP: ["iflag", 0o40],
  INLCR: ["iflag", 0o100],
  IGNCR: ["iflag", 0o200],
  ICRNL: ["iflag", 0o400],
  IUCLC: ["iflag", 0o1000],
  IXON: ["iflag", 0o2000],
  IXANY: ["iflag", 0o4000],
  IXOFF: ["iflag", 0o10000],
  IMAXBEL: ["iflag", 0o20000],
  IUTF8: ["iflag", 0o40000],
  OPOST: ["oflag", 0o1],
  OLCUC: ["oflag", 0o2],
  ONLCR: ["oflag", 0o4],
  OCRNL: ["oflag", 0o10],
  ONOCR: ["oflag", 0o20],
  ONLRET: ["oflag", 0o40],
  PARENB: ["cflag", 0o400],
  PARODD: ["cflag", 0o1000],
  ISIG: ["lflag", 0o1],
  ICANON: ["lflag", 0o2],
  XCASE: ["lflag", 0o4],
  ECHO: ["lflag", 0o10],
  ECHOE: ["lflag", 0o20],
  ECHOK: ["lflag", 0o40],
  ECHONL: ["lflag", 0o100],
  NOFLSH: ["lflag", 0o200],
  TOSTOP: ["lflag", 0o400],
  ECHOCTL: ["lflag", 0o1000],
  ECHOKE: ["lflag", 0o4000],
  PENDIN: ["lflag", 0o40000],
  IEXTEN: ["lflag", 0o100000],
};

/** Terminal modes from a `pty-req`: SSH mode name → value. Unknown names are ignored. */
export type TerminalModes = Readonly<Record<string, number>>;

/**
 * Edits a termios image in place with `modes`. Exported for tests; returns the names applied.
 */
export function applyModesToTermios(termios: Uint8Array, modes: TerminalModes): string[] {
  const view = new DataView(termios.buffer, termios.byteOffset, termios.byteLength);
  const applied: string[] = [];
  for (const [name, raw] of Object.entries(modes)) {
    if (typeof raw !== "number" || !Number.isFinite(raw)) continue;
    const value = raw >>> 0;
    const cc = CC[name];
    if (cc !== undefined) {
      // 255 means "no character"; Linux's _POSIX_VDISABLE is 0.
      termios[CC_OFFSET + cc] = value === 255 ? 0 : value & 0xff;
      applied.push(name);
      continue;
    }
    if (name === "CS7" || name === "CS8") {
      const bits = name === "CS7" ? 0o40 : 0o60;
      const cflag = view.getUint32(FIELD_OFFSET.cflag, true);
      if (value !== 0) view.setUint32(FIELD_OFFSET.cflag, (cflag & ~CSIZE) | bits, true);
      applied.push(name);
      continue;
    }
    const flag = FLAGS[name];
    if (flag === undefined) continue;
    const [field, bit] = flag;
    const old = view.getUint32(FIELD_OFFSET[field], true);
    view.setUint32(FIELD_OFFSET[field], value !== 0 ? old | bit : old & ~bit, true);
    applied.push(name);
  }
  return applied;
}

/**
 * Reads the termios of `fd` (a pty master or slave), applies `modes` and writes it back.
 *
 * @throws Error when tcgetattr/tcsetattr fail.
 */
export function applyTerminalModes(fd: number, modes: TerminalModes): void {
  if (Object.keys(modes).length === 0) return;
  const c = libc();
  const termios = new Uint8Array(TERMIOS_SIZE);
  if (c.tcgetattr(fd, termios) !== 0) {
    throw new Error(`tcgetattr on the new pty failed: ${describeErrno(errno())}`);
  }
  applyModesToTermios(termios, modes);
  if (c.tcsetattr(fd, TCSANOW, termios) !== 0) {
    throw new Error(`tcsetattr on the new pty failed: ${describeErrno(errno())}`);
  }
}
