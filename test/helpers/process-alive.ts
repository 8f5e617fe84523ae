// Whether a process exists: signal 0 checks without sending anything (EPERM: it exists, but is not ours).
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
