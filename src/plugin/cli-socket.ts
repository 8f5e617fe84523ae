// The docker CLI (≥ 25) gives a plugin a socket to connect to and closes it to ask the plugin to stop:
// with stdout not a TTY (CI), EOF on it is the only cancel notice before SIGKILL (docker/cli
// cli-plugins/socket/socket.go, cmd/docker/docker.go tryPluginRun).
// Best effort: an older CLI sets no socket, and Node < 22 cannot reach Linux abstract sockets.
import { connect, type Socket } from 'node:net';

export function watchPluginSocket(env: Record<string, string | undefined>, onCancel: () => void): { close(): void } {
  const name = env.DOCKER_CLI_PLUGIN_SOCKET;
  if (!name) return { close() {} };
  const path = name.startsWith('@') ? `\0${name.slice(1)}` : name;
  let socket: Socket | undefined;
  let closing = false;
  let connected = false;
  try {
    socket = connect({ path });
  } catch {
    return { close() {} };
  }
  socket.unref(); // never keeps the process alive
  socket.on('connect', () => {
    connected = true;
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    if (connected && !closing) onCancel();
  });
  socket.resume(); // the CLI never sends bytes; reading is how EOF is noticed
  return {
    close() {
      closing = true;
      socket?.destroy();
    },
  };
}
