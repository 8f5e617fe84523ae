// What one `up` created, so that a failed `up` leaves nothing half-made behind.
import type Dockerode from 'dockerode';

export class Rollback {
  /** Newest last: removed in reverse. */
  private created: { kind: 'container' | 'network' | 'volume'; name: string }[] = [];
  /** Set once the server counts as up: from then on a failure keeps what runs. */
  private kept = false;

  constructor(private readonly docker: Dockerode) {}

  track(kind: 'container' | 'network' | 'volume', name: string): void {
    this.created.push({ kind, name });
  }

  keep(keep = true): void {
    this.kept = keep;
  }

  /** Removes what was created, unless kept; removal failures are ignored (the original error matters). */
  async undo(): Promise<void> {
    if (this.kept) return;
    for (const { kind, name } of this.created.reverse()) {
      const remove = kind === 'container'
        ? this.docker.getContainer(name).remove({ force: true, v: true })
        : kind === 'network' ? this.docker.getNetwork(name).remove() : this.docker.getVolume(name).remove();
      await remove.catch(() => undefined);
    }
    this.created = [];
  }
}
