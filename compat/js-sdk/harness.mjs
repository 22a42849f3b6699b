// What the node test scripts share: the server they test (from the
// environment), one `ok N - name` line per check on stdout, the first
// failure as a `not ok` line on stderr with exit code 1, and a hard overall
// timeout so a script never hangs.

/** How long a whole script may take. */
export const TIMEOUT_MS = 30_000
/** How long one awaited event (a delivery, a subscription) may take. */
export const WAIT_MS = 8_000

const { HERALD_URL, HERALD_APP, HERALD_KEY } = process.env
if (!HERALD_URL || !HERALD_APP || !HERALD_KEY) {
  console.error('not ok - environment: set HERALD_URL, HERALD_APP and HERALD_KEY')
  process.exit(2)
}
/** The server under test. */
export const env = { HERALD_URL, HERALD_APP, HERALD_KEY }

let current = 'start-up'
let passed = 0
const overall = setTimeout(() => {
  console.error(`not ok - ${current}: overall timeout of ${TIMEOUT_MS / 1000} s exceeded`)
  process.exit(1)
}, TIMEOUT_MS)

process.on('unhandledRejection', e => fail(`unhandled rejection: ${describe(e)}`))
process.on('uncaughtException', e => fail(`uncaught exception: ${describe(e)}`))

/** An error as one line: a Backendless error with its code and status. */
export function describe(e) {
  if (e && typeof e === 'object' && 'code' in e) {
    return `${e.message} (code ${e.code}, status ${e.status})`
  }
  return e instanceof Error ? e.stack || e.message : String(e)
}

/** Fails the current check and ends the script. */
export function fail(why) {
  console.error(`not ok - ${current}: ${why}`)
  process.exit(1)
}

/** Runs one check; what `fn` returns is printed after its name. */
export async function check(name, fn) {
  current = name
  try {
    const detail = await fn()
    passed += 1
    console.log(`ok ${passed} - ${name}${detail ? ` (${detail})` : ''}`)
  } catch (e) {
    fail(describe(e))
  }
}

/** Ends the script: every check passed (`suffix` after the count). */
export function done(suffix = '') {
  clearTimeout(overall)
  console.log(`all ${passed} checks passed${suffix}`)
  // Timers of waits that were not needed would keep node running.
  process.exit(0)
}
