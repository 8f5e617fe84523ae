// A small tar built in memory (tar-stream's pack): the preflight's probe layer, a config file for a container.
import { pack } from 'tar-stream';

/** What tar-stream's pack takes for an entry: a name and any other header field. */
type EntryHeader = Parameters<ReturnType<typeof pack>['entry']>[0];

export interface PackEntry {
  header: EntryHeader;
  content?: string | Buffer;
}

export async function packTar(entries: readonly PackEntry[]): Promise<Buffer> {
  const archive = pack();
  for (const { header, content } of entries) {
    if (content === undefined) archive.entry(header);
    else archive.entry(header, content);
  }
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
