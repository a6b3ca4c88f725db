#!/usr/bin/env node
// wsgen's own load generator: three of the shared harness's scenarios, with a client
// cheap enough not to be the limit.
//
// fanout: the harness's generator (loadgen.mjs, the `ws` library) saturates its core
// near 400k deliveries/s, below what wsgen serves. Here each subscriber is a plain TCP
// socket with a minimal RFC 6455 reader: frames are cut from the stream, and a chat
// frame's send time, publisher and sequence number are read from the "B|<ms>|<idx>|
// <seq>|" marker in its bytes; no per-frame string, JSON or event object. Every 97th
// chat frame is parsed as JSON and checked, as the harness does. Same plan and measure
// as the harness (one room, `--subs` subscribers and a publisher, `--msgs` messages with
// at most `--window` not yet delivered to every subscriber).
//
// connections: `--conns` connections in rooms of `--room-size`, `--connect-concurrency`
// handshakes in flight, each done when its `connected` frame arrives, as the harness
// counts them. The harness's generator signs each token while it connects and runs
// each handshake through the `ws` library's HTTP client; here tokens are signed before
// the clock starts and the handshake is a raw request on a TCP socket.
//
// ping: `--ping-clients` clients, each alone in its room, each sending `{"type":"ping"}`
// and the next one when its pong arrives, for `--ping-seconds`, as the harness does.
// The harness's client tops out near 104k round trips/s against a server that answers
// from its read callback with prebuilt bytes; here a pong is recognised by its first
// bytes and the ping frame is built once.
//
// Prints one JSON line with the figures and the server's and the generator's CPU.
//
//   node bench/generator.mjs --url 'ws://127.0.0.1:8765/ws/comms/chat-rooms/{room}' \
//        --room ROOM --jwt-secret S --server-pid PID [--subs 1000 --msgs 200 --window 20]
//   node bench/generator.mjs --scenario connections --url ... --server-pid PID [--conns 5000]
//   node bench/generator.mjs --scenario ping --url ... --server-pid PID [--ping-clients 100]
//   node bench/generator.mjs --print-plan [--scenario S] [--room ROOM]   # {"rooms": {...}}
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";

const opt = {
  scenario: "fanout", url: "ws://127.0.0.1:8765/ws/comms/chat-rooms/{room}", room: "fanout-room",
  "jwt-secret": "", "server-pid": "", subs: 1000, msgs: 200, window: 20,
  conns: 5000, "room-size": 10, "connect-concurrency": 200, timeout: 120, "print-plan": false,
  "ping-clients": 100, "ping-seconds": 10,
};
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i].replace(/^--/, "");
  if (!(key in opt)) throw new Error(`unknown option ${process.argv[i]}`);
  opt[key] = typeof opt[key] === "boolean" ? true
    : typeof opt[key] === "number" ? Number(process.argv[++i]) : process.argv[++i];
}
const users = [...Array(opt.subs).keys()].map((i) => `s${i}`).concat(["pub0"]);
const connRooms = {}; // connections: room -> users
for (let i = 0; i < opt.conns; i++) {
  (connRooms[`${opt.room}-${Math.floor(i / opt["room-size"])}`] ??= []).push(`c${i}`);
}
const pingRooms = {}; // ping: one client per room
for (let i = 0; i < opt["ping-clients"]; i++) pingRooms[`${opt.room}-p${i}`] = [`p${i}`];
if (opt["print-plan"]) {
  const rooms = { connections: connRooms, ping: pingRooms }[opt.scenario] ?? { [opt.room]: users };
  // Exit once written: a pipe takes a large plan in several writes.
  process.stdout.write(JSON.stringify({ rooms }) + "\n", () => process.exit(0));
}
const log = (...a) => process.stderr.write(`[generator.mjs ${opt.scenario}] ${a.join(" ")}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const deadline = performance.now() + opt.timeout * 1000;

const b64u = (s) => Buffer.from(s).toString("base64url");
function tokenFor(uid) {
  if (!opt["jwt-secret"]) return uid;
  const iat = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64u(JSON.stringify({ sub: uid, iat, exp: iat + 3600 }));
  const sig = crypto.createHmac("sha256", opt["jwt-secret"]).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

// Server CPU from /proc, the generator's from process.cpuUsage: % of one core.
function serverCpuSeconds() {
  if (!opt["server-pid"]) return null;
  const f = fs.readFileSync(`/proc/${opt["server-pid"]}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
class CpuMeter {
  constructor() { this.t = performance.now(); this.s = serverCpuSeconds(); this.g = process.cpuUsage(); }
  stop() {
    const wall = (performance.now() - this.t) / 1000;
    const g = process.cpuUsage(this.g);
    const s = serverCpuSeconds();
    return {
      server_cpu_pct: s == null ? null : round((100 * (s - this.s)) / wall, 1),
      loadgen_cpu_pct: round((100 * (g.user + g.system)) / 1e6 / wall, 1),
    };
  }
}

const MARK_B = 0x42, BAR = 0x7c; // "B", "|"
const PONG = Buffer.from('{"event":"pong"'); // how compact JSON starts a pong
const PING_FRAME = Buffer.concat([Buffer.from([0x81, 0x80 | 15]), Buffer.alloc(4), Buffer.from('{"type":"ping"}')]);
const stats = { joined: 0, chat: 0, other: 0, checked: 0, bad: 0, echo: 0 };

// One client: a TCP socket speaking just enough WebSocket.
class Client {
  constructor(uid, idx, room = opt.room, token = null) {
    this.uid = uid; this.idx = idx; this.room = room; this.token = token;
    this.buf = null; this.onChat = null; this.seen = 0;
  }

  connect() {
    const url = new URL(opt.url.replaceAll("{room}", encodeURIComponent(this.room)));
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
      this.sock = sock;
      let head = Buffer.alloc(0), ready = false;
      sock.on("error", (e) => { if (!ready) reject(e); });
      sock.on("close", () => { if (!ready) reject(new Error("closed during the handshake")); });
      sock.on("connect", () => sock.write(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\n` +
        `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${this.token ?? tokenFor(this.uid)}\r\n\r\n`));
      const onHandshake = (data) => {
        head = Buffer.concat([head, data]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!head.subarray(0, 12).toString().startsWith("HTTP/1.1 101")) {
          reject(new Error(head.subarray(0, head.indexOf("\r\n")).toString()));
          sock.destroy();
          return;
        }
        sock.off("data", onHandshake);
        this.connected = () => { ready = true; resolve(this); };
        sock.on("data", (chunk) => this.receive(chunk));
        if (end + 4 < head.length) this.receive(head.subarray(end + 4));
      };
      sock.on("data", onHandshake);
    });
  }

  receive(chunk) {
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    const end = buf.length;
    while (end - pos >= 2) {
      let len = buf[pos + 1] & 0x7f, start = pos + 2;
      if (len === 126) { if (end - pos < 4) break; len = buf.readUInt16BE(pos + 2); start += 2; }
      else if (len === 127) { if (end - pos < 10) break; len = Number(buf.readBigUInt64BE(pos + 2)); start += 8; }
      if (start + len > end) break;
      if ((buf[pos] & 0x0f) === 1) this.frame(buf, start, start + len);
      pos = start + len;
    }
    this.buf = pos < end ? buf.subarray(pos) : null;
  }

  frame(buf, start, stop) {
    if (this.onPong && buf.compare(PONG, 0, PONG.length, start, start + PONG.length) === 0) {
      this.onPong();
      return;
    }
    const mark = buf.indexOf("B|", start);
    if (mark < 0 || mark >= stop) {
      const text = buf.toString("utf8", start, stop);
      if (this.onPong && text.includes('"pong"')) this.onPong(); // JSON with spaces
      else if (text.includes('"connected"')) this.connected?.();
      else if (text.includes('"user.joined"')) stats.joined++;
      else stats.other++;
      return;
    }
    const recv = performance.now();
    let i = mark + 2, sent = 0, frac = 0, scale = 1, from = 0, seq = 0;
    for (; buf[i] !== BAR && buf[i] !== 0x2e; i++) sent = sent * 10 + buf[i] - 48;
    if (buf[i] === 0x2e) for (i++; buf[i] !== BAR; i++) { frac = frac * 10 + buf[i] - 48; scale *= 10; }
    for (i++; buf[i] !== BAR; i++) from = from * 10 + buf[i] - 48;
    for (i++; buf[i] !== BAR; i++) seq = seq * 10 + buf[i] - 48;
    stats.chat++;
    if (from === this.idx) stats.echo++;
    if (++this.seen % 97 === 1) this.check(buf.toString("utf8", start, stop));
    this.onChat?.(recv - (sent + frac / scale), seq);
  }

  check(text) {
    stats.checked++;
    const m = JSON.parse(text), p = m.payload ?? {};
    const ok = m.event === "chat.message" && typeof p.id === "string" && p.sender !== this.uid &&
      p.messageType === "text" && typeof p.message === "string" && !Number.isNaN(Date.parse(p.timestamp));
    if (!ok) stats.bad++;
  }

  send(text) { // a masked text frame; the zero mask leaves the payload as is
    const payload = Buffer.from(text);
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff]);
    this.sock.write(Buffer.concat([head, Buffer.alloc(4), payload]));
  }
}

async function connectAll(specs) {
  const clients = [];
  let next = 0;
  async function worker() {
    while (next < specs.length) {
      const [uid, idx, room, token] = specs[next++];
      clients.push(await new Client(uid, idx, room, token).connect());
    }
  }
  await Promise.all(Array.from({ length: Math.min(opt["connect-concurrency"], specs.length) }, worker));
  return clients;
}

function percentile(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]; }

function serverRssKiB() {
  if (!opt["server-pid"]) return null;
  const line = fs.readFileSync(`/proc/${opt["server-pid"]}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return line ? Number(line[1]) : null;
}

async function connections() {
  const specs = [];
  for (const [room, members] of Object.entries(connRooms)) {
    for (const uid of members) specs.push([uid, specs.length, room, tokenFor(uid)]);
  }
  const expectJoined = Object.values(connRooms).reduce((a, u) => a + (u.length * (u.length - 1)) / 2, 0);
  await sleep(300);
  const rss0 = serverRssKiB();
  const cpu = new CpuMeter();
  const start = performance.now();
  const clients = await connectAll(specs);
  const seconds = (performance.now() - start) / 1000;
  const usage = cpu.stop();
  while (stats.joined < expectJoined && performance.now() < deadline) await sleep(20);
  await sleep(500);
  const rss1 = serverRssKiB();
  for (const c of clients) c.sock.destroy();
  process.stdout.write(JSON.stringify({
    scenario: "connections", generator: "bench/generator.mjs", requested: specs.length,
    opened: clients.length, room_size: opt["room-size"], joined_frames: stats.joined,
    expected_joined_frames: expectJoined, handshakes_per_s: Math.round(clients.length / seconds),
    connect_s: round(seconds, 3),
    rss_kib_per_conn: rss0 == null ? null : round((rss1 - rss0) / Math.max(1, clients.length), 2),
    ...usage,
  }) + "\n");
  process.exit(0);
}

async function ping() {
  const specs = Object.entries(pingRooms).map(([room, [uid]], i) => [uid, i, room, tokenFor(uid)]);
  const clients = await connectAll(specs);
  await sleep(200);
  const lat = [];
  let stop = false;
  const cpu = new CpuMeter();
  const start = performance.now();
  const end = start + opt["ping-seconds"] * 1000;
  for (const c of clients) {
    let sentAt = performance.now();
    c.onPong = () => {
      const now = performance.now();
      lat.push(now - sentAt);
      if (!stop && now < end) { sentAt = now; c.sock.write(PING_FRAME); }
    };
    c.sock.write(PING_FRAME);
  }
  while (performance.now() < end && performance.now() < deadline) await sleep(20);
  stop = true;
  const elapsed = (performance.now() - start) / 1000;
  const usage = cpu.stop();
  for (const c of clients) c.sock.destroy();
  const sorted = Float64Array.from(lat).sort();
  process.stdout.write(JSON.stringify({
    scenario: "ping", generator: "bench/generator.mjs", clients: clients.length,
    round_trips: lat.length, round_trips_per_s: Math.round(lat.length / elapsed),
    p50_ms: round(percentile(sorted, 50), 3), p99_ms: round(percentile(sorted, 99), 3), ...usage,
  }) + "\n");
  process.exit(0);
}

async function main() {
  if (opt.scenario === "connections") return connections();
  if (opt.scenario === "ping") return ping();
  const t0 = performance.now();
  const subs = await connectAll(users.slice(0, opt.subs).map((u, i) => [u, i]));
  const [pub] = await connectAll([[users[opt.subs], opt.subs]]);
  const n = subs.length, M = opt.msgs, W = opt.window;
  const expectJoined = (n * (n - 1)) / 2 + n; // as the harness counts the join storm
  while (stats.joined < expectJoined && performance.now() < deadline) await sleep(20);
  await sleep(500);
  log(`subs=${n} joined-frames=${stats.joined}/${expectJoined} in ${((performance.now() - t0) / 1000).toFixed(1)}s`);

  const lat = new Float64Array(n * M);
  const perMsg = new Uint32Array(M);
  let delivered = 0, completed = 0, lastRecv = 0, sent = 0;
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  const padding = "x".repeat(32);
  const pump = () => { // keep `window` messages in flight; sends are driven by completions
    while (sent < M && sent - completed < W) {
      pub.send(JSON.stringify({ type: "chat.message", data: { text: `B|${performance.now()}|${opt.subs}|${sent}|${padding}` } }));
      sent++;
    }
    if (completed === M) finished();
  };
  for (const s of subs) s.onChat = (latency, seq) => {
    lat[delivered++] = latency;
    lastRecv = performance.now();
    if (++perMsg[seq] === n) { completed++; pump(); }
  };
  const cpu = new CpuMeter();
  const start = performance.now();
  pump();
  await Promise.race([done, sleep(Math.max(0, deadline - performance.now()))]);
  const elapsed = ((lastRecv || performance.now()) - start) / 1000;
  const usage = cpu.stop();
  for (const c of [...subs, pub]) c.sock.destroy();
  const sorted = Float64Array.from(lat.subarray(0, delivered)).sort();
  process.stdout.write(JSON.stringify({
    scenario: "fanout", generator: "bench/generator.mjs", subscribers: n, messages: M, window: W,
    expected_deliveries: n * M, delivered, delivered_ratio: round(delivered / (n * M), 4),
    msgs_per_s: Math.round(delivered / elapsed), elapsed_s: round(elapsed, 3),
    p50_ms: round(percentile(sorted, 50), 3), p99_ms: round(percentile(sorted, 99), 3),
    schema_checked: stats.checked, schema_bad: stats.bad, echo_violations: stats.echo, ...usage,
  }) + "\n");
  process.exit(0);
}
if (!opt["print-plan"]) main().catch((e) => { log(e.stack || e); process.exit(1); });
