// Progress reporting: pipeline stages emit events; the sink decides how they look. stderr only.

export type ProgressEvent =
  | { stage: 'inspect'; image: string; layers: number; bytes: number }
  | { stage: 'cached'; image: string }
  | { stage: 'export'; image: string; /** An --input archive, when not the daemon. */ from?: string }
  /** index: position in the image (base = 0) when known, else in the stream; total: the image's layer count, if known. */
  | { stage: 'layer'; image: string; digest: string; index: number; total?: number; fetched: boolean; bytes: number }
  | { stage: 'index'; image: string }
  | { stage: 'match'; image: string }
  | { stage: 'done'; image: string; findings: number };

export type ProgressSink = (event: ProgressEvent) => void;

export const silentProgress: ProgressSink = () => {};

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** One line per event: readable in CI logs, where a redrawing line would only add noise. */
export function lineProgress(stream: NodeJS.WritableStream): ProgressSink {
  return (e) => {
    const line = (() => {
      switch (e.stage) {
        case 'inspect':
          return `${e.image}: ${e.layers} layer(s), ${mb(e.bytes)}`;
        case 'cached':
          return `${e.image}: Clair already indexed this image, nothing to export`;
        case 'export':
          return e.from !== undefined
            ? `${e.image}: reading ${e.from}`
            : `${e.image}: exporting from the Docker daemon (the daemon may stage the whole image first)`;
        case 'layer':
          return `${e.image}: layer ${e.index + 1}${e.total !== undefined ? `/${e.total}` : ''} ${short(e.digest)} ${e.fetched ? `sent to Clair (${mb(e.bytes)})` : 'already known to Clair'}`;
        case 'index':
          return `${e.image}: Clair is indexing the image`;
        case 'match':
          return `${e.image}: matching vulnerabilities`;
        case 'done':
          return `${e.image}: ${e.findings} finding(s)`;
      }
    })();
    stream.write(`${line}\n`);
  };
}
