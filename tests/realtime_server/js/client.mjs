// Drives the real supabase-js from pytest: commands arrive as JSON lines on stdin, everything
// the client sees leaves as JSON lines on stdout. Usage: node client.mjs <api url> <anon key>
import { createClient } from '@supabase/supabase-js'
import readline from 'node:readline'
import WebSocket from 'ws'

const [url, key] = process.argv.slice(2)
// The socket is the `ws` package (realtime-js's `transport` option), not Node's built-in one: Node 20's
// WebSocket (undici, behind --experimental-websocket) fires no `close` when a connection attempt fails
// (refused while the server restarts) and stays CONNECTING for ever, so Phoenix never schedules its
// next reconnect and the client is lost after one failed try. Browsers and `ws` fire `error` then
// `close` (1006) as the WHATWG spec says, and reconnect on realtime-js's schedule (1 s, 2 s, 5 s, then
// every 10 s); undici fixed it only later (nodejs/undici#3566).
const sb = createClient(url, key, { realtime: { heartbeatIntervalMs: 5000, transport: WebSocket } })
const channels = {}
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function run(cmd) {
  switch (cmd.op) {
    case 'auth': {
      // A signed-in fan: supabase-js hands the session's token to Realtime (setAuth)
      const { data, error } = await sb.auth.signInWithPassword({ email: cmd.email, password: cmd.password })
      out({ ev: 'auth', ok: !error, error: error && error.message, user: data.user && data.user.id })
      break
    }
    case 'setAuth':
      await sb.realtime.setAuth(cmd.token)
      out({ ev: 'setAuth' })
      break
    case 'channel': {
      const ch = sb.channel(cmd.topic, { config: cmd.config || {} })
      channels[cmd.name] = ch
      for (const b of cmd.broadcast || []) {
        ch.on('broadcast', { event: b }, (msg) => out({ ev: 'broadcast', ch: cmd.name, msg }))
      }
      if (cmd.presence) {
        ch.on('presence', { event: 'sync' }, () => out({ ev: 'presence', kind: 'sync', ch: cmd.name, state: ch.presenceState() }))
        ch.on('presence', { event: 'join' }, ({ key, newPresences }) => out({ ev: 'presence', kind: 'join', ch: cmd.name, key, metas: newPresences }))
        ch.on('presence', { event: 'leave' }, ({ key, leftPresences }) => out({ ev: 'presence', kind: 'leave', ch: cmd.name, key, metas: leftPresences }))
      }
      for (const f of cmd.postgres || []) {
        ch.on('postgres_changes', f, (payload) => out({ ev: 'postgres', ch: cmd.name, payload }))
      }
      ch.on('system', {}, (payload) => out({ ev: 'system', ch: cmd.name, payload }))
      ch.subscribe((status, err) => out({ ev: 'status', ch: cmd.name, status, error: err ? err.message : null }))
      break
    }
    case 'send': {
      const r = await channels[cmd.name].send({ type: 'broadcast', event: cmd.event, payload: cmd.payload })
      out({ ev: 'sent', ch: cmd.name, result: r })
      break
    }
    case 'track':
      out({ ev: 'tracked', ch: cmd.name, result: await channels[cmd.name].track(cmd.payload) })
      break
    case 'untrack':
      out({ ev: 'untracked', ch: cmd.name, result: await channels[cmd.name].untrack() })
      break
    case 'leave':
      out({ ev: 'left', ch: cmd.name, result: await channels[cmd.name].unsubscribe() })
      break
    case 'exit':
      await sb.removeAllChannels()
      out({ ev: 'exit' })
      process.exit(0)
  }
}

const rl = readline.createInterface({ input: process.stdin })
let chain = Promise.resolve()
rl.on('line', (line) => {
  if (!line.trim()) return
  chain = chain.then(() => run(JSON.parse(line))).catch((e) => out({ ev: 'error', message: String(e && e.stack || e) }))
})
rl.on('close', () => process.exit(0))
out({ ev: 'ready' })
