'use strict'
// Runs a real `spate serve` for a test file: ports picked by the kernel, a fresh data directory,
// killed at the end (and when the test process dies). The binary comes from $SPATE_BIN, else
// $CARGO_TARGET_DIR/debug/spate (default target dir $HOME/.cache/spate/target), as in
// tests/python/conftest.py.
//
// SPATE_SHOW_BROKER_LOG=1 prints the broker's log when it stops.
// `stop()` fails if the broker logged an ERROR line or a panic that the test did not allow with
// `allowErrors(regex)` (Neon's habit, as the Python suite does).

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')

const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000
const READY_LINE = /spate is ready.*?kafka_addr=(\S+).*?http_addr=(\S+).*?registry_addr=(\S+)/
const ERROR_LINE = /^\S+\s+ERROR\b|\bpanicked at\b/
const LOG_TAIL_LINES = 60

function spateBinary() {
  const explicit = process.env.SPATE_BIN
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/spate/target')
  const bin = explicit || path.join(target, 'debug', 'spate')
  try {
    fs.accessSync(bin, fs.constants.X_OK)
  } catch {
    throw new Error(
      `spate binary not found at ${bin}: run \`cargo build -p spate-cli\` ` +
        '(with CARGO_TARGET_DIR=$HOME/.cache/spate/target) or set SPATE_BIN'
    )
  }
  return bin
}

// setpriv (util-linux) sets PR_SET_PDEATHSIG before exec: the broker gets SIGKILL if this test
// process dies without running its cleanup (a test-runner timeout, a crash).
const SETPRIV = (() => {
  const probe = spawnSync('setpriv', ['--help'], { encoding: 'utf8' })
  return probe.status === 0 && probe.stdout.includes('--pdeathsig') ? 'setpriv' : null
})()

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

class Broker {
  constructor({ bin, dataDir, args, child }) {
    this.bin = bin
    this.dataDir = dataDir
    this.args = args
    this.child = child
    this.lines = []
    this.allowed = []
    this.kafkaAddr = ''
    this.httpAddr = ''
    this.registryAddr = ''
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        running.delete(child)
        resolve({ code, signal })
      })
    })
  }

  allowErrors(regex) {
    this.allowed.push(regex)
  }

  logTail() {
    return `--- last ${LOG_TAIL_LINES} lines of spate serve ---\n` +
      this.lines.slice(-LOG_TAIL_LINES).join('\n')
  }

  unexpectedErrors() {
    return this.lines.filter(l => ERROR_LINE.test(l) && !this.allowed.some(re => re.test(l)))
  }

  // SIGTERM, wait for a clean exit (SIGKILL after a deadline), remove the data directory, and
  // fail on unexpected ERROR lines.
  async stop() {
    if (running.has(this.child)) {
      this.child.kill('SIGTERM')
      let timer
      const deadline = new Promise(resolve => {
        timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS)
      })
      const exit = await Promise.race([this.exited, deadline])
      clearTimeout(timer)
      if (exit === null) {
        this.child.kill('SIGKILL')
        await this.exited
        throw new Error(`spate serve did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${this.logTail()}`)
      }
      if (exit.code !== 0) {
        throw new Error(`spate serve exited with ${exit.code ?? exit.signal} on SIGTERM\n${this.logTail()}`)
      }
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true })
    if (process.env.SPATE_SHOW_BROKER_LOG) process.stderr.write(`${this.lines.join('\n')}\n`)
    const errors = this.unexpectedErrors()
    if (errors.length > 0) {
      throw new Error(`spate serve logged unexpected errors:\n${errors.join('\n')}`)
    }
  }
}

// Starts `spate serve` and resolves once it logged `spate is ready`; on any failure the process
// is killed before the error is thrown.
async function startBroker({ args = [] } = {}) {
  const bin = spateBinary()
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spate-kafkajs-'))
  const serveArgs = [
    'serve',
    '--data-dir', dataDir,
    '--kafka-listen', '127.0.0.1:0',
    '--http-listen', '127.0.0.1:0',
    '--registry-listen', '127.0.0.1:0',
    // Test files run in parallel; Connect has its own tests (tests/python/test_connect.py).
    '--connect-listen', 'off',
    '--sql-listen', 'off',
    ...args,
  ]
  const [cmd, argv] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...serveArgs]]
    : [bin, serveArgs]
  const child = spawn(cmd, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_BACKTRACE: '1', ...process.env },
  })
  running.add(child)
  const broker = new Broker({ bin, dataDir, args: serveArgs, child })
  broker.lines.push(`----- ${bin} ${serveArgs.join(' ')}`)

  const ready = new Promise((resolve, reject) => {
    let timer = null
    const finish = (fn, value) => {
      clearTimeout(timer)
      fn(value)
    }
    timer = setTimeout(
      () => finish(reject, new Error(`spate serve logged no 'spate is ready' line within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS
    )
    const onLine = line => {
      broker.lines.push(line)
      const m = READY_LINE.exec(line)
      if (m && !broker.kafkaAddr) {
        broker.kafkaAddr = m[1]
        broker.httpAddr = m[2]
        broker.registryAddr = m[3]
        finish(resolve)
      }
    }
    // The log goes to stderr; stdout is read too so nothing is lost or blocks on a full pipe.
    readline.createInterface({ input: child.stderr }).on('line', onLine)
    readline.createInterface({ input: child.stdout }).on('line', onLine)
    child.once('error', err => finish(reject, new Error(`could not start ${bin}: ${err.message}`)))
    child.once('exit', (code, signal) =>
      finish(reject, new Error(`spate serve exited with ${code ?? signal} before it was ready`))
    )
  })

  try {
    await ready
  } catch (err) {
    child.kill('SIGKILL')
    await broker.exited
    fs.rmSync(dataDir, { recursive: true, force: true })
    err.message += `\n${broker.logTail()}`
    throw err
  }
  return broker
}

module.exports = { startBroker, spateBinary }
