/**
 * Encoded terminal modes of a pty-req (RFC 4254 §8): a sequence of `byte opcode, uint32 value`
 * pairs ended by TTY_OP_END (0). Opcodes 1 to 159 take a uint32 argument; 160 to 255 are
 * undefined and stop parsing.
 */
import { SshReader, SshWriter } from "../ca/mod.ts";
import { BadParameterError } from "../errors/mod.ts";

/** RFC 4254 §8 opcodes by name, plus IUTF8 (RFC 8160). */
export const TERMINAL_MODES: Readonly<Record<string, number>> = Object.freeze({
  VINTR: 1,
  VQUIT: 2,
  VERASE: 3,
  VKILL: 4,
  VEOF: 5,
  VEOL: 6,
  VEOL2: 7,
  VSTART: 8,
  VSTOP: 9,
  VSUSP: 10,
  VDSUSP: 11,
  VREPRINT: 12,
  VWERASE: 13,
  VLNEXT: 14,
  VFLUSH: 15,
  VSWTCH: 16,
  VSTATUS: 17,
  VDISCARD: 18,
  IGNPAR: 30,
  PARMRK: 31,
  INPCK: 32,
  ISTRIP: 33,
  INLCR: 34,
  IGNCR: 35,
  ICRNL: 36,
  IUCLC: 37,
  IXON: 38,
  IXANY: 39,
  IXOFF: 40,
  IMAXBEL: 41,
  IUTF8: 42,
  ISIG: 50,
  ICANON: 51,
  XCASE: 52,
  ECHO: 53,
  ECHOE: 54,
  ECHOK: 55,
  ECHONL: 56,
  NOFLSH: 57,
  TOSTOP: 58,
  IEXTEN: 59,
  ECHOCTL: 60,
  ECHOKE: 61,
  PENDIN: 62,
  OPOST: 70,
  OLCUC: 71,
  ONLCR: 72,
  OCRNL: 73,
  ONOCR: 74,
  ONLRET: 75,
  CS7: 90,
  CS8: 91,
  PARENB: 92,
  PARODD: 93,
  TTY_OP_ISPEED: 128,
  TTY_OP_OSPEED: 129,
});

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(TERMINAL_MODES).map(([name, op]) => [op, name]),
);

/** RFC 4254 §8: TTY_OP_END. */
const TTY_OP_END = 0;
/** RFC 4254 §8: first opcode without a defined argument. */
const FIRST_UNDEFINED_OPCODE = 160;

/**
 * Decodes encoded terminal modes. Unknown opcodes below 160 are skipped (their argument is
 * read); an opcode of 160 or more, TTY_OP_END or the end of the data stops parsing. Truncated
 * data throws BadParameterError.
 */
export function parseTerminalModes(encoded: Uint8Array): Record<string, number> {
  const r = new SshReader(encoded, "terminal modes");
  const modes: Record<string, number> = {};
  while (r.remaining > 0) {
    const op = r.byte();
    if (op === TTY_OP_END || op >= FIRST_UNDEFINED_OPCODE) break;
    const value = r.uint32();
    const name = NAMES.get(op);
    if (name !== undefined) modes[name] = value;
  }
  return modes;
}

/** Encodes terminal modes (names from {@link TERMINAL_MODES}) followed by TTY_OP_END. */
export function encodeTerminalModes(modes: Readonly<Record<string, number>>): Uint8Array {
  const w = new SshWriter();
  for (const [name, value] of Object.entries(modes)) {
    const op = Object.hasOwn(TERMINAL_MODES, name) ? TERMINAL_MODES[name] : undefined;
    if (op === undefined) {
      throw new BadParameterError(
        `Cannot encode terminal modes: unknown mode ${JSON.stringify(name)}`,
      );
    }
    w.byte(op).uint32(value);
  }
  return w.byte(TTY_OP_END).bytes();
}
