/** The program's version, reported by `teleport version`, ping and heartbeats. */
export const VERSION = "0.1.0";
