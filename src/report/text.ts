// Cleaning Clair- and user-provided text before a renderer writes it. Clair passes advisory text through from
// upstream feeds and image references come from the command line: either may hold escape sequences a terminal
// would act on, characters XML 1.0 forbids, or bidirectional controls that reorder what a reader sees. Every
// renderer cleans the same way, so a string looks the same in every format.

// ANSI escape sequences: CSI (ESC [ … final, or 8-bit CSI 0x9b), OSC/DCS/SOS/PM/APC strings (ESC ] … BEL|ST),
// and two-character ESC sequences.
const ESCAPES =
  /\u001b\[[0-?]*[ -/]*[@-~]|\u009b[0-?]*[ -/]*[@-~]|\u001b[\]PX^_][^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[ -/]*[0-~]/g;

// Everything XML 1.0 forbids (C0 but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF), plus DEL, C1 and the
// bidirectional controls, which XML allows but which only ever disturb a reader.
const FORBIDDEN =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]+/g;
// Remaining C0, DEL, C1, and the bidirectional embedding/override/isolate controls.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// A lone UTF-16 surrogate cannot be encoded: a terminal or file would get U+FFFD anyway, so say so up front.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text kept on several lines (XML bodies, SARIF, JSON strings): escapes and forbidden characters removed, CR LF → LF. */
export function cleanText(text: string): string {
  return text.replace(ESCAPES, '').replace(/\r\n?/g, '\n').replace(FORBIDDEN, '');
}

/** Text safe to print on a terminal on one line: escape sequences and control characters removed. */
export function stripControl(text: string): string {
  return text.replace(ESCAPES, '').replace(LINE_BREAKS, ' ').replace(CONTROLS, '').replace(LONE_SURROGATE, '\uFFFD');
}

/** Text without its escape sequences (e.g. colour), to measure how wide it shows. */
export function withoutEscapes(text: string): string {
  return text.replace(ESCAPES, '');
}
