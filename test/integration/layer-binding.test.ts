// Where the layer server listens and what it advertises, decided against the real daemon: a Clair
// published on loopback from a container must get the container network's gateway, not loopback.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { createDockerClient } from '../../src/docker/client.js';
import { resolveEndpoint } from '../../src/docker/endpoint.js';
import { DockerImageSource } from '../../src/source/daemon.js';
import { chooseLayerBinding, containerNetworkBinding } from '../../src/layer-server/advertise.js';
import { LayerServer } from '../../src/layer-server/server.js';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('layer server address', () => {
  const suffix = randomBytes(4).toString('hex');
  const network = `docker-clair-test-net-${suffix}`;
  const container = `docker-clair-test-clair-${suffix}`;
  let port = 0;
  let gateway = '';
  let source: DockerImageSource;

  before(async () => {
    const endpoint = await resolveEndpoint({ hosts: [TEST_DOCKER_HOST] }, {});
    source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
    port = await freePort();
    // A stand-in for a Clair container: what matters is the published port and the network it sits on.
    dockerCli(['network', 'create', network]);
    dockerCli(['run', '-d', '--name', container, '--network', network, '-p', `127.0.0.1:${port}:6060`, TEST_IMAGES.debian12, 'sleep', '600']);
    gateway = dockerCli(['network', 'inspect', network, '-f', '{{(index .IPAM.Config 0).Gateway}}']);
  });
  after(() => {
    try {
      dockerCli(['rm', '-f', container]);
    } finally {
      dockerCli(['network', 'rm', network]);
    }
  });

  it('Clair published on loopback by a container: listen on and advertise its network gateway', async () => {
    assert.match(gateway, /^\d+\.\d+\.\d+\.\d+$/);
    const binding = await chooseLayerBinding(new URL(`http://127.0.0.1:${port}`), undefined, (p) => source.publishedPortGateway(p));
    assert.equal(binding.listenHost, gateway);
    assert.equal(binding.advertiseHost, gateway);
    assert.match(binding.why, new RegExp(`publishing port ${port}`));
    // The gateway is an address of this host: the layer server can bind it.
    const server = await LayerServer.start({ listenHost: binding.listenHost, advertiseHost: binding.advertiseHost });
    try {
      assert.match(server.baseUrl, new RegExp(`^http://${gateway.replace(/\./g, '\\.')}:\\d+$`));
    } finally {
      await server.close();
    }
  });

  it('Clair on loopback with no container publishing its port: loopback', async () => {
    const other = await freePort();
    const binding = await chooseLayerBinding(new URL(`http://localhost:${other}`), undefined, (p) => source.publishedPortGateway(p));
    assert.equal(binding.listenHost, '127.0.0.1');
    assert.equal(binding.advertiseHost, '127.0.0.1');
  });

  it('Clair on another address: the local address that routes there', async () => {
    const local = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    assert.ok(local, 'this machine has a non-loopback IPv4 address');
    const binding = await chooseLayerBinding(new URL(`http://${local.address}:6060`));
    assert.equal(binding.advertiseHost, local.address);
    assert.equal(binding.listenHost, local.address);
  });

  it('--layer-address: a local address is bound, anything else is advertised while listening everywhere', async () => {
    assert.deepEqual(await chooseLayerBinding(new URL('http://clair.example:6060'), { host: 'build-host.example', port: 9000 }), {
      listenHost: '0.0.0.0', listenPort: 9000, advertiseHost: 'build-host.example', why: '--layer-address',
    });
    assert.deepEqual(await chooseLayerBinding(new URL('http://clair.example:6060'), { host: '127.0.0.1' }), {
      listenHost: '127.0.0.1', listenPort: 0, advertiseHost: '127.0.0.1', why: '--layer-address',
    });
  });
});

describe('the managed Clair network', () => {
  it("a gateway that is an address of this machine is bound and advertised", () => {
    const local = Object.values(networkInterfaces()).flat().find((i) => i?.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
    const binding = containerNetworkBinding(local);
    assert.equal(binding.listenHost, local);
    assert.equal(binding.advertiseHost, local);
  });

  it('a gateway inside a VM (Docker Desktop) is not: listen everywhere, advertise host.docker.internal', () => {
    const binding = containerNetworkBinding('203.0.113.1');
    assert.equal(binding.listenHost, '0.0.0.0');
    assert.equal(binding.advertiseHost, 'host.docker.internal');
    assert.match(binding.why, /203\.0\.113\.1 is not an address of this machine/);
  });
});
