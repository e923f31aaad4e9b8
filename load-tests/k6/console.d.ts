/** k6 provides console in every context, but @types/k6 leaves it to the DOM lib, which would bring browser globals k6 lacks. */
declare const console: { log(...values: unknown[]): void; warn(...values: unknown[]): void; error(...values: unknown[]): void };
