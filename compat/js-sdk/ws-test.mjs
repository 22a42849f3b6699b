// socket.io's own client (socket.io-client 4.8.4, the one the Backendless
// SDK bundles) over a WebSocket from the first request
// (`transports: ['websocket']`, as mobile and server-side clients often
// connect): the session the server's direct WebSocket path serves.
//
//   HERALD_URL=http://127.0.0.1:8080 HERALD_APP=APP HERALD_KEY=KEY node ws-test.mjs
//
// One line per check on stdout; on the first failure a `not ok` line with the
// reason on stderr and exit code 1. A hard overall timeout means it never hangs.
// `cargo test -p herald-server --test js_sdk` starts a server and runs this.

import assert from 'node:assert/strict'
import { io } from 'socket.io-client'

import { WAIT_MS, check, done, env } from './harness.mjs'

const { HERALD_URL, HERALD_APP, HERALD_KEY } = env

function connect(key) {
  return io(`${HERALD_URL}/${HERALD_APP}`, {
    path: `/${HERALD_APP}`,
    query: { apiKey: key },
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
  })
}

/** The next `event` whose payload satisfies `pred`, within WAIT_MS. */
function next(socket, event, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on)
      reject(new Error(`no ${event} within ${WAIT_MS} ms`))
    }, WAIT_MS)
    function on(data) {
      if (pred(data)) {
        clearTimeout(timer)
        socket.off(event, on)
        resolve(data)
      }
    }
    socket.on(event, on)
  })
}

async function publish(channel, message) {
  const res = await fetch(`${HERALD_URL}/${HERALD_APP}/${HERALD_KEY}/messaging/${channel}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message }),
  })
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return JSON.parse(text)
}

const socket = connect(HERALD_KEY)

await check('connects over a WebSocket from the first request', async () => {
  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
  socket.connect()
  await connected
  assert.equal(socket.io.engine.transport.name, 'websocket')
  assert.ok(socket.id, 'a socket.io id')
})

await check('SUB_ON is answered SUB_READY and runs arrive in order', async () => {
  const ready = next(socket, 'SUB_READY', d => d.id === 'a')
  socket.emit('SUB_ON', { id: 'a', name: 'PUB_SUB_MESSAGES', options: { channel: 'wsjs' } })
  await ready
  const got = []
  const all = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(got)}`)), WAIT_MS)
    socket.on('SUB_RES', d => {
      if (d.id !== 'a') return
      got.push(d.data.message.n)
      if (got.length === 5) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  for (let n = 0; n < 5; n++) await publish('wsjs', { n })
  await all
  socket.off('SUB_RES')
  assert.deepEqual(got, [0, 1, 2, 3, 4])
})

await check('a 200 KB run arrives whole (a 64-bit frame length)', async () => {
  const big = 'é'.repeat(100_000)
  const res = next(socket, 'SUB_RES', d => d.id === 'a')
  await publish('wsjs', { big })
  const d = await res
  assert.equal(d.data.message.big, big)
})

await check('a bad selector is SUB_RES 5012', async () => {
  const res = next(socket, 'SUB_RES', d => d.id === 'bad')
  socket.emit('SUB_ON', { id: 'bad', name: 'PUB_SUB_MESSAGES', options: { channel: 'wsjs', selector: 'n >' } })
  const d = await res
  assert.equal(d.error.code, 5012, JSON.stringify(d))
})

await check('MET_REQ SET_USER_TOKEN is answered', async () => {
  const res = next(socket, 'MET_RES', d => d.id === 'm')
  socket.emit('MET_REQ', { id: 'm', name: 'SET_USER_TOKEN', options: { userToken: null } })
  assert.deepEqual(await res, { id: 'm', result: null })
})

await check('SUB_OFF stops the runs', async () => {
  socket.emit('SUB_OFF', { id: 'a' })
  // The MET_RES comes after the SUB_OFF was handled (one reader, in order).
  const res = next(socket, 'MET_RES', d => d.id === 'sync')
  socket.emit('MET_REQ', { id: 'sync', name: 'SET_USER_TOKEN' })
  await res
  const answer = await publish('wsjs', { n: 'after' })
  assert.equal(answer.status, 'published')
  const stray = await Promise.race([
    next(socket, 'SUB_RES').then(d => d, () => null),
    new Promise(resolve => setTimeout(() => resolve(null), 300)),
  ])
  assert.equal(stray, null, `a run after SUB_OFF: ${JSON.stringify(stray)}`)
})

await check('a wrong key is refused at the handshake', async () => {
  const bad = connect('wrong-key')
  const err = await new Promise((resolve, reject) => {
    bad.once('connect', () => reject(new Error('connected with a wrong key')))
    bad.once('connect_error', resolve)
    bad.connect()
  })
  assert.ok(err, 'connect_error')
  bad.close()
})

await check('disconnects cleanly', async () => {
  const gone = new Promise(resolve => socket.once('disconnect', resolve))
  socket.disconnect()
  assert.equal(await gone, 'io client disconnect')
})

done()
