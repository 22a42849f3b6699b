// Runs the official Backendless JS SDK (backendless@8.0.0, pinned in
// package.json) against a Herald server and checks what the README promises.
//
//   HERALD_URL=http://127.0.0.1:8080 HERALD_APP=APP HERALD_KEY=KEY node sdk-test.mjs
//
// One line per check on stdout; on the first failure a `not ok` line with the
// reason on stderr and exit code 1. A hard overall timeout means it never hangs.
// `cargo test -p herald-server --test js_sdk` starts a server and runs this.

import assert from 'node:assert/strict'
import Backendless from 'backendless'

import { WAIT_MS, check, describe, done, env, fail } from './harness.mjs'

const { HERALD_URL, HERALD_APP, HERALD_KEY } = env

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `predicate` every 20 ms; throws `what` after `ms`. */
async function waitFor(predicate, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    }
    await sleep(20)
  }
}

/**
 * Waits until `channel` has joined (PUB_SUB_CONNECT answered) and its `n`
 * message listeners are ready (each answered with SUB_READY). This is the
 * SDK's own bookkeeping: `addMessageListener` has no ready callback, and a
 * message published before the server has registered the listener is
 * (correctly) not delivered to it.
 */
async function listenersReady(channel, n) {
  await waitFor(
    () => {
      const subs = (channel.subscriptions && channel.subscriptions.MESSAGE) || []
      return channel.isConnected() && subs.length === n && subs.every(s => s.subscription.isReady())
    },
    `${n} message listener(s) on ${channel.options.name} to be ready (SUB_READY)`,
  )
}

/** Expects `promise` to reject with Backendless error `code` (and `message`). */
async function rejectsWith(promise, code, message) {
  let result
  try {
    result = await promise
  } catch (e) {
    assert.equal(e.code, code, `error code (error: ${describe(e)})`)
    if (message !== undefined) {
      // Backendless's text unchanged, then (Herald) what exactly was wrong.
      assert.ok(
        e.message === message || e.message.startsWith(`${message} `),
        `error message ${JSON.stringify(e.message)} starts with ${JSON.stringify(message)}`,
      )
    }
    return `${e.code}: ${e.message}`
  }
  throw new Error(`expected a rejection with code ${code}, got ${JSON.stringify(result)}`)
}

const { Messaging } = Backendless
const run = `${Date.now().toString(36)}-${process.pid}`
const CHANNEL = `sdk-${run}`
const FILTERED = `sdk-filtered-${run}`
const NEWS = `news-${run}`

await check('initApp and GET info', async () => {
  // v8: appPath = [serverURL, appId, apiKey].join('/'), so serverURL is the
  // bare origin, without a trailing slash.
  Backendless.initApp({ appId: HERALD_APP, apiKey: HERALD_KEY, serverURL: HERALD_URL.replace(/\/+$/, '') })
  const info = await Backendless.appInfoPromise()
  assert.equal(typeof info.rtURL, 'string', `rtURL in ${JSON.stringify(info)}`)
  assert.match(info.rtURL, /^https?:\/\//, 'rtURL is an http(s) URL')
  return `rtURL ${info.rtURL}`
})

await check('Messaging.publish(channel, message) is published', async () => {
  const status = await Messaging.publish(CHANNEL, 'hello from the SDK')
  assert.equal(typeof status.messageId, 'string', `messageId in ${JSON.stringify(status)}`)
  assert.ok(status.messageId.length > 0, 'messageId is not empty')
  assert.equal(status.status, 'published', `status in ${JSON.stringify(status)}`)
  return `messageId ${status.messageId}`
})

// Every message the listeners below receive, in arrival order.
const all = []
const filtered = []
let channel

await check('subscribe + addMessageListener receives a publish (real-time)', async () => {
  channel = Messaging.subscribe(CHANNEL)
  channel.addMessageListener(m => all.push(m), e => fail(`listener error: ${describe(e)}`))
  await listenersReady(channel, 1)

  const message = { text: 'hello', n: [1, 2, 3] }
  const status = await Messaging.publish(
    CHANNEL,
    message,
    new Messaging.PublishOptions({ headers: { city: 'Berlin', n: 42, ok: true } }),
  )
  assert.equal(status.status, 'published', `status in ${JSON.stringify(status)}`)
  await waitFor(() => all.some(m => m.messageId === status.messageId), `message ${status.messageId}`)
  const got = all.filter(m => m.messageId === status.messageId)
  assert.equal(got.length, 1, 'delivered exactly once')
  assert.deepEqual(got[0].message, message, 'message body')
  assert.deepEqual(got[0].headers, { city: 'Berlin', n: '42', ok: 'true' }, 'headers, values as strings')
  return `messageId ${status.messageId}, headers ${JSON.stringify(got[0].headers)}`
})

await check('addMessageListener("foo > 10") gets exactly foo=20 and foo=50', async () => {
  const ch = Messaging.subscribe(FILTERED)
  ch.addMessageListener('foo > 10', m => filtered.push(m), e => fail(`listener error: ${describe(e)}`))
  await listenersReady(ch, 1)

  const ids = {}
  for (const foo of [5, 10, 20, 50]) {
    const s = await Messaging.publish(FILTERED, `foo=${foo}`, { headers: { foo } })
    ids[s.messageId] = `foo=${foo}`
  }
  const bare = await Messaging.publish(FILTERED, 'no headers')
  ids[bare.messageId] = 'no headers'
  // A last matching message: deliveries to one listener keep publish order,
  // so once it is in, every earlier match is too.
  const end = await Messaging.publish(FILTERED, 'end', { headers: { foo: 1000 } })
  await waitFor(() => filtered.some(m => m.messageId === end.messageId), 'the end marker (foo=1000)')

  const got = filtered.filter(m => m.messageId !== end.messageId).map(m => ids[m.messageId] || m.messageId)
  assert.deepEqual(got, ['foo=20', 'foo=50'], 'the selector matches')
  assert.deepEqual(filtered.slice(0, 2).map(m => m.headers), [{ foo: '20' }, { foo: '50' }], 'headers')
  return got.join(', ')
})

await check("the README snippet: selector city = 'Berlin', plain option objects", async () => {
  const news = Messaging.subscribe(NEWS)
  const got = []
  news.addMessageListener("city = 'Berlin'", m => got.push(m), e => fail(`listener error: ${describe(e)}`))
  await listenersReady(news, 1)

  const paris = await Messaging.publish(NEWS, 'bonjour', { headers: { city: 'Paris' } })
  const status = await Messaging.publish(NEWS, 'hello', { headers: { city: 'Berlin' } },
                                         { publishAt: Date.now() + 1000 })
  assert.equal(status.status, 'scheduled', `publish status in ${JSON.stringify(status)}`)
  await waitFor(() => got.some(m => m.messageId === status.messageId), `message ${status.messageId}`)
  assert.ok(!got.some(m => m.messageId === paris.messageId), "city = 'Paris' must not match")
  assert.equal(got.length, 1, 'one delivery')
  assert.equal(got[0].message, 'hello', 'message body')
  assert.deepEqual(got[0].headers, { city: 'Berlin' }, 'headers')
  const socket = await Backendless.RT.session.getSocket()
  return `transport ${socket.ioSocket.io.engine.transport.name}`
})

await check('delayed publish: scheduled, then delivered and published', async () => {
  const publishAt = Date.now() + 1500
  const status = await Messaging.publish(
    CHANNEL,
    'later',
    null,
    new Messaging.DeliveryOptions({ publishAt }),
  )
  assert.equal(status.status, 'scheduled', `publish status in ${JSON.stringify(status)}`)
  const before = await Messaging.getMessageStatus(status.messageId)
  assert.equal(before.status, 'scheduled', `status before delivery: ${JSON.stringify(before)}`)
  assert.equal(before.messageId, status.messageId, 'status messageId')

  await waitFor(() => all.some(m => m.messageId === status.messageId), `delayed message ${status.messageId}`)
  const arrived = Date.now()
  assert.ok(arrived >= publishAt - 50, `arrived ${publishAt - arrived} ms before publishAt`)
  const after = await Messaging.getMessageStatus(status.messageId)
  assert.equal(after.status, 'published', `status after delivery: ${JSON.stringify(after)}`)
  return `arrived ${arrived - publishAt} ms after publishAt`
})

await check('repeating publish arrives at least twice with one messageId', async () => {
  const start = Date.now()
  const status = await Messaging.publish(
    CHANNEL,
    'tick',
    null,
    new Messaging.DeliveryOptions({ repeatEvery: 1, repeatExpiresAt: start + 2500 }),
  )
  assert.equal(typeof status.messageId, 'string', `messageId in ${JSON.stringify(status)}`)
  const runs = () => all.filter(m => m.messageId === status.messageId)
  await waitFor(() => runs().length >= 2, `two runs of ${status.messageId}`)
  for (const m of runs()) {
    assert.equal(m.message, 'tick', 'message body of each run')
  }
  return `status ${status.status}, ${runs().length} runs within ${Date.now() - start} ms`
})

await check('cancel(id) a scheduled message: cancelled; again: 5040', async () => {
  const status = await Messaging.publish(
    CHANNEL,
    'never',
    null,
    new Messaging.DeliveryOptions({ publishAt: Date.now() + 60_000 }),
  )
  assert.equal(status.status, 'scheduled', `publish status in ${JSON.stringify(status)}`)
  const cancelled = await Messaging.cancel(status.messageId)
  assert.equal(cancelled.status, 'cancelled', `cancel answer ${JSON.stringify(cancelled)}`)
  const now = await Messaging.getMessageStatus(status.messageId)
  assert.equal(now.status, 'cancelled', `status after cancel: ${JSON.stringify(now)}`)
  const again = await rejectsWith(Messaging.cancel(status.messageId), 5040)
  return `second cancel: ${again}`
})

await check('publishAt a day in the past rejects with 5003', async () => {
  return rejectsWith(
    Messaging.publish(CHANNEL, 'too late', null, new Messaging.DeliveryOptions({ publishAt: Date.now() - 86_400_000 })),
    5003,
    'Invalid publishAt date in the delivery options.',
  )
})

// Push: device registration (needs Backendless.setupDevice) and templates.
const DEVICE = `sdk-device-${run}`
const PUSH_CHANNEL = `sdk-push-${run}`

await check('setupDevice + registerDevice(token, channels, Date) answers a registrationId', async () => {
  Backendless.setupDevice({ uuid: DEVICE, platform: 'ios', version: '17.4' })
  // A Date travels as fractional epoch seconds (getTime() / 1000).
  const expiration = new Date(Date.UTC(2030, 0, 1, 12, 0, 0, 500))
  const answer = await Messaging.registerDevice('a1b2c3d4', [PUSH_CHANNEL, 'default'], expiration)
  assert.equal(typeof answer.registrationId, 'string', `registrationId in ${JSON.stringify(answer)}`)
  assert.ok(answer.registrationId.length > 0, 'registrationId is not empty')
  return `registrationId ${answer.registrationId}`
})

await check('getRegistrations() is a list with the device\'s registration', async () => {
  const list = await Messaging.getRegistrations()
  assert.ok(Array.isArray(list), `a list: ${JSON.stringify(list)}`)
  assert.equal(list.length, 1, 'one registration')
  const [reg] = list
  assert.equal(reg.deviceId, DEVICE, 'deviceId is the device uuid')
  assert.equal(reg.deviceToken, 'a1b2c3d4', 'deviceToken')
  assert.equal(reg.os, 'IOS', 'os: the platform, upper case')
  assert.equal(reg.osVersion, '17.4', 'osVersion')
  assert.deepEqual(reg.channels, ['default', PUSH_CHANNEL].sort(), 'channels')
  assert.equal(reg.expiration, Date.UTC(2030, 0, 1, 12, 0, 0, 500), 'expiration in ms, from seconds')
  return `registration ${reg.id}`
})

await check('registerDevice again replaces the channels', async () => {
  const again = await Messaging.registerDevice('e5f6a7b8', [PUSH_CHANNEL])
  const [reg] = await Messaging.getRegistrations()
  assert.equal(reg.id, again.registrationId, 'the new registration')
  assert.deepEqual(reg.channels, [PUSH_CHANNEL], 'channels replaced')
  assert.equal(reg.deviceToken, 'e5f6a7b8', 'token replaced')
  assert.equal(reg.expiration, null, 'no expiration now')
  return `channels ${JSON.stringify(reg.channels)}`
})

await check('unregisterDevice() resolves {result: true}; then getRegistrations() rejects with 5000', async () => {
  const answer = await Messaging.unregisterDevice()
  assert.deepEqual(answer, { result: true }, 'unregister answer')
  return rejectsWith(
    Messaging.getRegistrations(),
    5000,
    'Unable to retrieve device registration - unknown device ID.',
  )
})

await check('getPushTemplates(\'IOS\') lists a template created over REST', async () => {
  const name = `sdk-template-${run}`
  const base = `${HERALD_URL.replace(/\/+$/, '')}/${HERALD_APP}/${HERALD_KEY}/messaging/pushtemplates`
  const created = await fetch(base, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      name,
      message: 'Hello {firstName|there}',
      title: 'Welcome',
      audience: { os: ['IOS'], channel: PUSH_CHANNEL },
    }),
  })
  assert.equal(created.status, 200, `create: ${await created.clone().text()}`)
  const android = `${name}-android`
  const other = await fetch(base, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: android, message: 'Hi', audience: { os: ['ANDROID'] } }),
  })
  assert.equal(other.status, 200, `create: ${await other.clone().text()}`)

  const ios = await Messaging.getPushTemplates('IOS')
  assert.ok(Array.isArray(ios), `a list: ${JSON.stringify(ios)}`)
  const mine = ios.filter(t => t.name.startsWith(name))
  assert.deepEqual(mine.map(t => t.name), [name], 'IOS lists the IOS template only')
  assert.equal(mine[0].message, 'Hello {firstName|there}', 'message')
  assert.equal(mine[0].title, 'Welcome', 'title')
  assert.deepEqual(mine[0].audience, { os: ['IOS'], channel: PUSH_CHANNEL }, 'audience')
  const all = await Messaging.getPushTemplates('ALL')
  assert.deepEqual(all.filter(t => t.name.startsWith(name)).map(t => t.name), [name, android].sort(), 'ALL lists both')
  await rejectsWith(Messaging.getPushTemplates('BLACKBERRY'), 8012)
  for (const n of [name, android]) {
    const gone = await fetch(`${base}/${encodeURIComponent(n)}`, { method: 'DELETE' })
    assert.equal(gone.status, 200, `delete ${n}`)
  }
  return `${ios.length} IOS template(s)`
})

await check('pushWithTemplate(name, values) sends it to the template\'s audience', async () => {
  const root = `${HERALD_URL.replace(/\/+$/, '')}/${HERALD_APP}/${HERALD_KEY}/messaging`
  const post = async (path, body) => {
    const res = await fetch(`${root}/${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    })
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`)
    return res.json()
  }
  // A device with a property for the smart text (registerDevice sends none).
  await post('registrations', {
    deviceId: `sdk-push-device-${run}`,
    deviceToken: `sdk-token-${run}`,
    os: 'IOS',
    channels: [PUSH_CHANNEL],
    properties: { firstName: 'Ada' },
  })
  const name = `sdk-send-${run}`
  await post('pushtemplates', {
    name,
    message: 'Hello {firstName|there}, {greeting}',
    audience: { os: ['IOS'], channel: PUSH_CHANNEL },
  })
  const status = await Messaging.pushWithTemplate(name, { greeting: 'welcome' })
  assert.equal(status.status, 'published', JSON.stringify(status))
  assert.equal(typeof status.messageId, 'string')
  let last
  await waitFor(async () => {
    last = await Messaging.getMessageStatus(status.messageId)
    return last.deliveries && last.deliveries.pushSent === 1 && last.deliveries.pushPending === 0
  }, 'the notification is sent')
  await rejectsWith(Messaging.pushWithTemplate(`no-such-${run}`), 5050)
  return `sent to sdk-token-${run}`
})

await check('deleteChannel(channel) resolves', async () => {
  const result = await Messaging.deleteChannel(CHANNEL)
  return `answer ${JSON.stringify(result)}`
})

Backendless.RT.terminate()
done(` against ${HERALD_URL}`)
