#!/usr/bin/env node
// SPDX-License-Identifier: MIT
'use strict';
/*
 * smtpuv's Node binding beside nodemailer (pool mode), in one run, against
 * one Postfix smtp-sink on loopback. Not a test: it prints numbers and ratios.
 *
 *   node bench/node_compare.js [--quick] [--pairs N]
 *
 * Needs: bindings/node built (bindings/node/scripts/build.sh; it also
 * installs nodemailer from package-lock.json) and smtp-sink (postfix).
 *
 * Workloads (every message 2 KiB, one recipient, all queued at once):
 *   W1    one connection: smtpuv maxConnections 1 (pipelined across
 *         messages), nodemailer pool with maxConnections 1 (one message
 *         after the other)
 *   W2-8  eight connections: maxConnections 8 for both
 * Each run is a fresh child process; CPU is the child's own user+system
 * time (process.cpuUsage) over the sending only, divided by the messages.
 * PAIRS runs per workload and client, alternating; the median is printed.
 */
const {spawn, spawnSync} = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BINDING = path.join(ROOT, 'bindings', 'node');

// ---- child: one run --------------------------------------------------------------

async function child(impl, port, conns, n) {
  const body = 'From: a@example.com\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n' +
    ('x'.repeat(78) + '\r\n').repeat(25);
  const raw = Buffer.from(body.padEnd(2048, 'y'));
  let send, done;
  if (impl === 'smtpuv') {
    const smtp = require(BINDING);
    const c = smtp.createClient({host: '127.0.0.1', port, tls: 'none', maxConnections: conns});
    send = () => c.send({from: 'a@example.com', to: ['b@example.com'], raw});
    done = () => c.close();
  } else {
    const nodemailer = require(path.join(BINDING, 'node_modules', 'nodemailer'));
    const t = nodemailer.createTransport({host: '127.0.0.1', port, secure: false, ignoreTLS: true,
                                          pool: true, maxConnections: conns, maxMessages: Infinity});
    send = () => t.sendMail({envelope: {from: 'a@example.com', to: ['b@example.com']}, raw});
    done = async () => t.close();
  }
  // warm-up: connections up, JIT warm
  await Promise.all(Array.from({length: conns * 4}, send));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const rs = await Promise.all(Array.from({length: n}, send));
  const t1 = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const ok = rs.filter((r) => (r.status === undefined ? r.accepted.length === 1 : r.status === 'sent')).length;
  await done();
  const secs = Number(t1 - t0) / 1e9;
  process.stdout.write(JSON.stringify({ok, n, secs, cpuUs: cpu.user + cpu.system}) + '\n');
}

// ---- parent ------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(impl, port, conns, n) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [__filename, '--child', impl, String(port), String(conns), String(n)],
                    {stdio: ['ignore', 'pipe', 'inherit']});
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    const kill = setTimeout(() => p.kill('SIGKILL'), 300000); // bounded
    p.on('exit', (code) => {
      clearTimeout(kill);
      if (code !== 0) return reject(new Error(`${impl} run exited ${code}`));
      resolve(JSON.parse(out));
    });
  });
}

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--child') return child(args[1], Number(args[2]), Number(args[3]), Number(args[4]));
  const quick = args.includes('--quick');
  const pi = args.indexOf('--pairs');
  const pairs = pi >= 0 ? Number(args[pi + 1]) : (quick ? 1 : 3);
  const sinkBin = spawnSync('sh', ['-c', 'command -v smtp-sink || echo /usr/sbin/smtp-sink'],
                            {encoding: 'utf8'}).stdout.trim();
  const port = await freePort();
  const user = process.getuid() === 0 ? ['-u', 'nobody'] : [];
  // backlog 1000; no -d: nothing written, the sink costs as little as it can
  const sink = spawn(sinkBin, [...user, '-c', '-h', 'localhost', `127.0.0.1:${port}`, '1000'],
                     {stdio: 'ignore'});
  try {
    for (let i = 0; i < 100; i++) { // wait for the listener (bounded)
      const up = await new Promise((r) => {
        const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
        s.on('error', () => r(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const workloads = [['W1', 1, quick ? 300 : 1000], ['W2-8', 8, quick ? 1000 : 5000]];
    console.log(`node ${process.version}, smtp-sink pid ${sink.pid} on 127.0.0.1:${port}, ${pairs} pair(s), median shown`);
    console.log('workload  client      msgs   msg/s   CPU us/msg');
    for (const [name, conns, n] of workloads) {
      const res = {smtpuv: [], nodemailer: []};
      for (let p = 0; p < pairs; p++)
        for (const impl of ['smtpuv', 'nodemailer']) {
          const r = await run(impl, port, conns, n);
          if (r.ok !== n) throw new Error(`${impl} ${name}: ${r.ok}/${n} sent`);
          res[impl].push(r);
        }
      const row = {};
      for (const impl of ['smtpuv', 'nodemailer']) {
        const rate = median(res[impl].map((r) => r.n / r.secs));
        const cpu = median(res[impl].map((r) => r.cpuUs / r.n));
        row[impl] = {rate, cpu};
        console.log(`${name.padEnd(9)} ${impl.padEnd(10)} ${String(n).padStart(6)} ${rate.toFixed(0).padStart(7)} ${cpu.toFixed(1).padStart(11)}`);
      }
      console.log(`${name.padEnd(9)} ratio      smtpuv/nodemailer: ${(row.smtpuv.rate / row.nodemailer.rate).toFixed(2)}x msg/s, ` +
                  `${(row.nodemailer.cpu / row.smtpuv.cpu).toFixed(2)}x less CPU per message`);
    }
  } finally {
    process.kill(sink.pid, 'SIGTERM');
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
