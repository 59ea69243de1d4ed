// Helia, the JavaScript IPFS node, exchanging a file with an ipfsbench-node daemon over
// Bitswap (driven by integration-tests/tests/helia.rs).
//
// Helia runs offline: TCP on 127.0.0.1 only, noise and yamux, identify; no bootstrap, mDNS,
// DHT, delegated routers or gateways. Its routers are its libp2p router (which finds nothing
// without a DHT) and a router that answers nothing: Helia's findProviders never ends when
// every router it has is a fallback router, so one ordinary router must be there.
//
//   node helia.mjs fetch <daemon multiaddr> <cid> <out file>
//     dials the daemon, fetches <cid> (a UnixFS file) and writes its bytes to <out file>;
//     prints one JSON line: {"cid","bytes","ms"}.
//   node helia.mjs serve <daemon multiaddr | -> <in file>
//     adds <in file> (Helia's defaults: CIDv1, raw leaves, 1 MiB chunks), dials the daemon
//     unless given `-`, prints one JSON line: {"cid","peer","addrs","ms"}, then serves its
//     blocks until its standard input closes.
//
// Any failure prints {"error": "..."} and exits with status 1.

import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createHelia } from 'helia'
import { CID } from 'multiformats/cid'

/** The longest a fetch or a dial may take. */
const TIMEOUT_MS = 240_000

/** A router that knows no providers, peers or records. */
const noRouter = {
  name: 'no-router',
  async * findProviders () {},
  async provide () {},
  async cancelReprovide () {}
}

async function startHelia () {
  const helia = await createHelia({
    libp2p: {
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      peerDiscovery: [],
      services: { identify: identify() }
    },
    http: { delegatedRouters: [], recursiveGateways: [] },
    routers: [noRouter]
  })
  if (helia.status !== 'started') {
    await helia.start()
  }
  return helia
}

async function fetchFile (helia, daemon, cid, out) {
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  const started = Date.now()
  await helia.libp2p.dial(multiaddr(daemon), { signal })
  const file = createWriteStream(out)
  let bytes = 0
  for await (const chunk of unixfs(helia).cat(CID.parse(cid), { signal })) {
    bytes += chunk.length
    if (!file.write(chunk)) {
      await once(file, 'drain')
    }
  }
  file.end()
  await once(file, 'finish')
  return { cid, bytes, ms: Date.now() - started }
}

async function serveFile (helia, daemon, input) {
  const started = Date.now()
  const cid = await unixfs(helia).addByteStream(createReadStream(input))
  if (daemon !== '-') {
    await helia.libp2p.dial(multiaddr(daemon), { signal: AbortSignal.timeout(TIMEOUT_MS) })
  }
  return {
    cid: cid.toString(),
    peer: helia.libp2p.peerId.toString(),
    addrs: helia.libp2p.getMultiaddrs().map(String),
    ms: Date.now() - started
  }
}

/** Resolves when standard input ends (the test is done with the served file). */
async function stdinClosed () {
  process.stdin.resume()
  await once(process.stdin, 'end')
}

async function main () {
  const [mode, daemon, ...rest] = process.argv.slice(2)
  const helia = await startHelia()
  try {
    if (mode === 'fetch' && rest.length === 2) {
      console.log(JSON.stringify(await fetchFile(helia, daemon, rest[0], rest[1])))
    } else if (mode === 'serve' && rest.length === 1) {
      console.log(JSON.stringify(await serveFile(helia, daemon, rest[0])))
      await stdinClosed()
    } else {
      throw new Error('usage: helia.mjs fetch <multiaddr> <cid> <out> | serve <multiaddr|-> <in>')
    }
  } finally {
    await helia.stop()
  }
}

main().then(() => process.exit(0), (err) => {
  console.log(JSON.stringify({ error: String(err?.stack ?? err) }))
  process.exit(1)
})
