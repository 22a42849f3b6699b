// Runs in the browser, on a page whose origin is not the server's: the
// Backendless JS SDK (browser build, global `Backendless`) publishes and
// subscribes through a Herald server, which must grant this origin (CORS)
// for the REST calls and for socket.io's long polling.
//
// Query: ?server=URL&denied=URL&app=ID&key=KEY. `denied` is a Herald server
// whose cors_origins leaves this page out. The outcome goes to
// `window.heraldResult`: {ok, checks: [{name, detail}], failed?, error?}.
'use strict'

;(async () => {
  const params = new URLSearchParams(location.search)
  const server = params.get('server')
  const denied = params.get('denied')
  const appId = params.get('app')
  const apiKey = params.get('key')
  const WAIT_MS = 10000
  const checks = []
  let current = 'start-up'

  const log = text => { document.getElementById('log').textContent += text + '\n' }
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
  const describe = e => (e && typeof e === 'object' && 'code' in e)
    ? `${e.message} (code ${e.code}, status ${e.status})`
    : (e instanceof Error ? `${e.name}: ${e.message}` : String(e))
  const assert = (ok, what) => { if (!ok) throw new Error(`assertion failed: ${what}`) }

  async function check(name, fn) {
    current = name
    const detail = await fn()
    checks.push({ name, detail: detail || '' })
    log(`ok - ${name}${detail ? ` (${detail})` : ''}`)
  }

  async function waitFor(predicate, what) {
    const deadline = Date.now() + WAIT_MS
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)
      await sleep(20)
    }
  }

  // The SDK's own bookkeeping: joined, and each listener answered SUB_READY.
  async function listenersReady(channel, n) {
    await waitFor(() => {
      const subs = (channel.subscriptions && channel.subscriptions.MESSAGE) || []
      return channel.isConnected() && subs.length === n && subs.every(s => s.subscription.isReady())
    }, `${n} message listener(s) to be ready`)
  }

  try {
    const { Messaging } = Backendless
    const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
    const CHANNEL = `browser-${run}`

    await check('the page and the server are different origins', async () => {
      const api = new URL(server).origin
      assert(api !== location.origin, `${api} vs ${location.origin}`)
      return `page ${location.origin}, server ${api}`
    })

    await check('initApp and GET info (cross-origin)', async () => {
      Backendless.initApp({ appId, apiKey, serverURL: server.replace(/\/+$/, '') })
      const info = await Backendless.appInfoPromise()
      assert(typeof info.rtURL === 'string', `rtURL in ${JSON.stringify(info)}`)
      return `rtURL ${info.rtURL}`
    })

    await check('publish: a JSON POST, after a preflight', async () => {
      const status = await Messaging.publish(CHANNEL, 'hello from a browser')
      assert(status.status === 'published', `status in ${JSON.stringify(status)}`)
      return `messageId ${status.messageId}`
    })

    const got = []
    const listenerErrors = []
    let channel
    await check('subscribe + addMessageListener receives a publish (real-time)', async () => {
      channel = Messaging.subscribe(CHANNEL)
      channel.addMessageListener(m => got.push(m), e => listenerErrors.push(describe(e)))
      await listenersReady(channel, 1)
      const message = { text: 'hi', n: [1, 2, 3] }
      const status = await Messaging.publish(CHANNEL, message, { headers: { city: 'Berlin', n: 42 } })
      await waitFor(() => got.some(m => m.messageId === status.messageId), `message ${status.messageId}`)
      const mine = got.filter(m => m.messageId === status.messageId)
      assert(mine.length === 1, 'delivered exactly once')
      assert(JSON.stringify(mine[0].message) === JSON.stringify(message), `body ${JSON.stringify(mine[0].message)}`)
      assert(mine[0].headers.city === 'Berlin' && mine[0].headers.n === '42', `headers ${JSON.stringify(mine[0].headers)}`)
      assert(listenerErrors.length === 0, `listener errors: ${listenerErrors}`)
      return `headers ${JSON.stringify(mine[0].headers)}`
    })

    await check('delayed publish: scheduled, then delivered (real-time)', async () => {
      const status = await Messaging.publish(CHANNEL, 'later', null, { publishAt: Date.now() + 500 })
      assert(status.status === 'scheduled', `status in ${JSON.stringify(status)}`)
      await waitFor(() => got.some(m => m.messageId === status.messageId), `delayed message ${status.messageId}`)
      const socket = await Backendless.RT.session.getSocket()
      return `transport now ${socket.ioSocket.io.engine.transport.name}`
    })

    await check('status (GET) and cancel (DELETE) of a scheduled message', async () => {
      const status = await Messaging.publish(CHANNEL, 'never', null, { publishAt: Date.now() + 60000 })
      const before = await Messaging.getMessageStatus(status.messageId)
      assert(before.status === 'scheduled', `status ${JSON.stringify(before)}`)
      const cancelled = await Messaging.cancel(status.messageId)
      assert(cancelled.status === 'cancelled', `cancel answer ${JSON.stringify(cancelled)}`)
      return `${before.status} -> ${cancelled.status}`
    })

    await check('an error answer is readable cross-origin (code 5003)', async () => {
      try {
        await Messaging.publish(CHANNEL, 'too late', null, { publishAt: Date.now() - 86400000 })
      } catch (e) {
        assert(e.code === 5003, `error ${describe(e)}`)
        return describe(e)
      }
      throw new Error('the publish did not fail')
    })

    await check('a server whose cors_origins leaves this page out: the browser refuses', async () => {
      try {
        const res = await fetch(`${denied}/${appId}/${apiKey}/info`)
        throw new Error(`the browser let the page read the answer (${res.status})`)
      } catch (e) {
        assert(e instanceof TypeError, `a network error, got ${describe(e)}`)
        return describe(e)
      }
    })

    window.heraldResult = { ok: true, checks }
  } catch (e) {
    log(`not ok - ${current}: ${describe(e)}`)
    window.heraldResult = { ok: false, checks, failed: current, error: describe(e) }
  }
})()
