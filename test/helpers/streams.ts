import { Writable } from 'node:stream';

/** A writable that keeps what is written, for stdout/stderr assertions. */
export class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}
