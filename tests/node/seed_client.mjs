// Runs the "Client Integration" code of the seed (../shared/seed/000_df0dd7d149cc0f83.txt)
// against a wsgen server. The two blocks between the SEED markers are the seed's code,
// unchanged but for the server's address; the harness only supplies what the seed leaves
// to the application (roomId, token, displayMessage, handleSignaling, offerSDP), sends the
// "Send messages" lines once the socket is open, and prints what the client saw as JSON lines.
import WebSocket from 'ws'

const { WSGEN_ORIGIN, ROOM_ID, TOKEN } = process.env
const roomId = ROOM_ID
const token = TOKEN
const offerSDP = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' }
const seen = []
const report = (entry) => {
  seen.push(entry)
  process.stdout.write(JSON.stringify(entry) + '\n')
  if (seen.some((e) => e.kind === 'display') && seen.some((e) => e.kind === 'signal')) {
    ws.close(1000)
  }
}
const displayMessage = (from, text) => report({ kind: 'display', from, text })
const handleSignaling = (type, from, data) => report({ kind: 'signal', type, from, data })
console.log = (...args) => report({ kind: 'log', args })
setTimeout(() => {
  process.stderr.write('timed out waiting for a chat message and a signal\n')
  process.exit(2)
}, 10000).unref()

// ---- SEED: connect and parse (verbatim but for the address) ----
// Connect with authentication
const ws = new WebSocket(`${WSGEN_ORIGIN}/ws/comms/chat-rooms/${roomId}`, {
  headers: {
    Authorization: `Bearer ${token}`
  }
})

// Parse incoming messages
ws.onmessage = (event) => {
  const envelope = JSON.parse(event.data)

  // Filter system events
  if (envelope.event === 'connected') {
    console.log('Connected:', envelope.payload)
    return
  }

  if (envelope.event === 'user.joined' || envelope.event === 'user.left') {
    console.log('System event:', envelope.event)
    return
  }

  // Handle application events
  if (envelope.event === 'chat.message') {
    const { from, text, timestamp } = envelope.payload
    displayMessage(from, text)
  }

  if (envelope.event?.startsWith('video.')) {
    const { type, from, data } = envelope.payload
    handleSignaling(type, from, data)
  }
}
// ---- END SEED ----

ws.onopen = () => {
  // ---- SEED: send messages (verbatim) ----
  // Send messages
  ws.send(JSON.stringify({ type: 'chat.message', data: { text: 'Hello!' } }))
  ws.send(JSON.stringify({ type: 'video.offer', data: offerSDP }))
  // ---- END SEED ----
}
ws.onerror = (error) => {
  process.stderr.write(`error: ${error.message}\n`)
  process.exit(1)
}
ws.onclose = (event) => process.exit(event.code === 1000 ? 0 : 3)
