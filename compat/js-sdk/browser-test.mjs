// Runs the Backendless JS SDK's browser build (backendless@8.0.0) in headless
// Chromium, on a page served from another origin than the Herald server's,
// and checks that it publishes and subscribes (real-time) there: the server
// must answer CORS preflights and grant the page's origin on its REST
// answers and on socket.io's long polling.
//
//   HERALD_URL=http://127.0.0.1:8080 HERALD_DENIED_URL=http://127.0.0.1:8081 \
//   HERALD_APP=APP HERALD_KEY=KEY [HERALD_CHROMIUM=/usr/bin/chromium] node browser-test.mjs
//
// HERALD_DENIED_URL is a second server (same app and key) whose cors_origins
// leaves the page out: the browser must refuse to show its answer.
// One line per check on stdout; on failure a `not ok` line on stderr and exit
// code 1. `cargo test -p herald-server --test browser` starts both servers
// and runs this.

import http from 'node:http'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const TIMEOUT_MS = 60_000
const here = fileURLToPath(new URL('.', import.meta.url))
const { HERALD_URL, HERALD_DENIED_URL, HERALD_APP, HERALD_KEY } = process.env
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium'
if (!HERALD_URL || !HERALD_DENIED_URL || !HERALD_APP || !HERALD_KEY) {
  console.error('not ok - environment: set HERALD_URL, HERALD_DENIED_URL, HERALD_APP and HERALD_KEY')
  process.exit(2)
}

let browser
let current = 'start-up'
async function fail(why) {
  console.error(`not ok - ${current}: ${why}`)
  if (browser) await browser.close().catch(() => {})
  process.exit(1)
}
const overall = setTimeout(() => fail(`overall timeout of ${TIMEOUT_MS / 1000} s exceeded`), TIMEOUT_MS)
process.on('unhandledRejection', e => fail(`unhandled rejection: ${e && e.stack || e}`))

// The page's own origin: a static server on another port.
const files = {
  '/': ['browser/index.html', 'text/html; charset=utf-8'],
  '/page.js': ['browser/page.js', 'text/javascript; charset=utf-8'],
  '/backendless.js': ['node_modules/backendless/dist/backendless.js', 'text/javascript; charset=utf-8'],
}
const pages = http.createServer(async (req, res) => {
  const file = files[new URL(req.url, 'http://x').pathname]
  if (!file) {
    res.writeHead(404).end()
    return
  }
  res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' })
  res.end(await readFile(here + file[0]))
})
await new Promise(resolve => pages.listen(0, '127.0.0.1', resolve))
const pageOrigin = `http://127.0.0.1:${pages.address().port}`

// The denied server is up and serves the app: a refusal in the browser is CORS.
current = 'the second server answers node (no CORS outside browsers)'
const direct = await fetch(`${HERALD_DENIED_URL}/${HERALD_APP}/${HERALD_KEY}/info`, { headers: { Origin: pageOrigin } })
if (direct.status !== 200 || direct.headers.get('access-control-allow-origin') !== null) {
  await fail(`status ${direct.status}, allow-origin ${direct.headers.get('access-control-allow-origin')}`)
}

current = 'launch Chromium'
browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: 30_000,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
})
console.log(`# ${CHROMIUM} ${browser.version()}, page ${pageOrigin}, server ${HERALD_URL}`)
const page = await browser.newPage()

// What the browser itself saw: console errors, and socket.io's requests.
const consoleErrors = []
page.on('console', m => {
  if (process.env.HERALD_BROWSER_DEBUG) console.log(`# console.${m.type()}: ${m.text()}`)
  if (m.type() === 'error') consoleErrors.push(`${m.text()} @ ${m.location().url}`)
})
page.on('pageerror', e => consoleErrors.push(`page error: ${e.message}`))
const polling = []
page.on('response', r => {
  if (r.url().includes('transport=polling')) {
    polling.push({ method: r.request().method(), status: r.status(), allow: r.headers()['access-control-allow-origin'] })
  }
})
let websockets = 0
page.on('websocket', () => { websockets += 1 })

current = 'run the page'
const query = new URLSearchParams({ server: HERALD_URL, denied: HERALD_DENIED_URL, app: HERALD_APP, key: HERALD_KEY })
await page.goto(`${pageOrigin}/?${query}`)
try {
  await page.waitForFunction(() => window.heraldResult, null, { timeout: TIMEOUT_MS - 15_000 })
} catch (e) {
  const shown = await page.evaluate(() => document.getElementById('log')?.textContent).catch(() => '')
  await fail(`${e.message}\npage log:\n${shown}\nconsole errors: ${JSON.stringify(consoleErrors, null, 1)}`)
}
const result = await page.evaluate(() => window.heraldResult)
let passed = 0
for (const c of result.checks) {
  passed += 1
  console.log(`ok ${passed} - ${c.name}${c.detail ? ` (${c.detail})` : ''}`)
}
if (!result.ok) {
  current = result.failed
  await fail(`${result.error}\nconsole errors: ${JSON.stringify(consoleErrors, null, 1)}`)
}

current = "socket.io's long polling crossed origins"
const gets = polling.filter(p => p.method === 'GET')
const posts = polling.filter(p => p.method === 'POST')
if (gets.length === 0 || posts.length === 0) {
  await fail(`expected GET and POST polling requests, saw ${JSON.stringify(polling)}`)
}
const refused = polling.filter(p => p.status !== 200 || p.allow !== pageOrigin)
if (refused.length > 0) await fail(`refused: ${JSON.stringify(refused)}`)
passed += 1
console.log(`ok ${passed} - ${current} (${gets.length} GET, ${posts.length} POST, all granted; ${websockets} websocket(s))`)

current = "CORS errors only for the server that leaves the page out"
const openOrigin = new URL(HERALD_URL).origin
const deniedOrigin = new URL(HERALD_DENIED_URL).origin
// Expected: the denied server's refusal, and the 400 of the 5003 check.
const unexpected = consoleErrors.filter(e =>
  e.startsWith('page error') || (e.includes('CORS') && e.includes(openOrigin)) || /status of 5\d\d/.test(e))
if (unexpected.length > 0) await fail(JSON.stringify(unexpected, null, 1))
if (!consoleErrors.some(e => e.includes('CORS') && e.includes(deniedOrigin))) {
  await fail(`the refusal left no CORS error: ${JSON.stringify(consoleErrors, null, 1)}`)
}
passed += 1
console.log(`ok ${passed} - ${current}`)

clearTimeout(overall)
await browser.close()
pages.close()
console.log(`all ${passed} checks passed in headless Chromium against ${HERALD_URL}`)
process.exit(0)
