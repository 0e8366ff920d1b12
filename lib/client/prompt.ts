/**
 * Prompts for tsh: on a terminal, secret answers are read with echo off (raw mode, restored
 * afterwards, Backspace and Ctrl-U edit, Ctrl-C aborts); when standard input is not a terminal
 * the answers are read as lines (so `printf 'password\ncode\n' | tsh login …` works). Lines are
 * buffered across questions, so one chunk may answer several.
 */
import { BadParameterError } from "../errors/mod.ts";
import type { Prompt } from "./login.ts";

/** What the prompter reads (Deno.stdin fits). */
export interface PromptInput {
  read(p: Uint8Array): Promise<number | null>;
  isTerminal(): boolean;
  setRaw?(mode: boolean): void;
}

/** Where questions go (Deno.stderr fits). */
export interface PromptOutput {
  writeSync(p: Uint8Array): number;
}

const ENCODER = new TextEncoder();

/** Asks questions on `output` and reads answers from `input`; see the module doc. */
export class LinePrompter {
  readonly #input: PromptInput;
  readonly #output: PromptOutput;
  #buffer: number[] = [];
  #eof = false;

  constructor(input: PromptInput, output: PromptOutput) {
    this.#input = input;
    this.#output = output;
  }

  /** The prompt function for login (bound to this prompter). */
  readonly prompt: Prompt = (question, options) => this.ask(question, options);

  /** Writes `question` and reads the answer. */
  async ask(question: string, options: { secret: boolean }): Promise<string> {
    this.#write(question.endsWith(" ") ? question : question + " ");
    if (options.secret && this.#input.isTerminal() && this.#input.setRaw !== undefined) {
      return await this.#readSecret(question);
    }
    const line = await this.#readLine();
    if (line === undefined) {
      throw new BadParameterError(
        `Cannot read the answer to "${question.trim()}": standard input ended`,
      );
    }
    return line;
  }

  #write(text: string): void {
    const bytes = ENCODER.encode(text);
    let off = 0;
    while (off < bytes.length) off += this.#output.writeSync(bytes.subarray(off));
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(4096);
    const n = await this.#input.read(chunk);
    if (n === null || n === 0) {
      this.#eof = n === null;
      return n !== null;
    }
    for (let i = 0; i < n; i++) this.#buffer.push(chunk[i]!);
    return true;
  }

  /** The next line without its line ending; undefined at the end of the input. */
  async #readLine(): Promise<string | undefined> {
    while (true) {
      const nl = this.#buffer.indexOf(0x0a);
      if (nl >= 0) {
        const bytes = this.#buffer.splice(0, nl + 1).slice(0, -1);
        if (bytes.at(-1) === 0x0d) bytes.pop();
        return new TextDecoder().decode(new Uint8Array(bytes));
      }
      if (!await this.#fill()) {
        if (this.#buffer.length === 0) return undefined;
        const bytes = this.#buffer.splice(0);
        if (bytes.at(-1) === 0x0d) bytes.pop();
        return new TextDecoder().decode(new Uint8Array(bytes));
      }
    }
  }

  async #readSecret(question: string): Promise<string> {
    const bytes: number[] = [];
    this.#input.setRaw!(true);
    try {
      while (true) {
        if (this.#buffer.length === 0 && !await this.#fill()) {
          throw new BadParameterError(
            `Cannot read the answer to "${question.trim()}": standard input ended`,
          );
        }
        const b = this.#buffer.shift();
        if (b === undefined) continue;
        if (b === 0x0d || b === 0x0a) break;
        if (b === 0x03) {
          throw new BadParameterError(
            `Cannot read the answer to "${question.trim()}": interrupted`,
          );
        }
        if (b === 0x04 && bytes.length === 0) {
          throw new BadParameterError(
            `Cannot read the answer to "${question.trim()}": standard input ended`,
          );
        }
        if (b === 0x7f || b === 0x08) {
          // Remove one UTF-8 character: its continuation bytes, then its lead byte.
          while (bytes.length > 0 && (bytes.at(-1)! & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else if (b === 0x15) {
          bytes.length = 0;
        } else if (b >= 0x20 || b === 0x09) {
          bytes.push(b);
        }
      }
    } finally {
      this.#input.setRaw!(false);
      this.#write("\n");
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }
}
