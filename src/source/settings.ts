// What the image source takes from the command line.

export interface SourceSettings {
  /** The images named on the command line (with --input, selected from the archive; may be empty). */
  images: string[];
  /** A `docker save` archive to read instead of the daemon; '-' = stdin. */
  input?: string;
}
