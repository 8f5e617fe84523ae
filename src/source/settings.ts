// What the image source takes from the command line.

export interface SourceSettings {
  /** The images named on the command line (with --input, selected from the archive; may be empty). */
  images: string[];
  /** A `docker save` archive to read instead of the daemon; '-' = stdin. */
  input?: string;
  /** Where images come from, in order (--image-src): the daemon, then the registry, by default. */
  imageSources?: ImageSourceKind[];
  /** --platform os/arch[/variant] for a multi-platform registry image. */
  platform?: string;
}

/** `daemon`: the Docker daemon's images (`docker save`); `remote`: the registry the reference names. */
export type ImageSourceKind = 'daemon' | 'remote';
