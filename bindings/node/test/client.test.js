// SPDX-License-Identifier: MIT
'use strict';
// smtpuv for Node.js against the repository's real servers (tests/servers/):
// aiosmtpd (STARTTLS, implicit TLS, AUTH, XOAUTH2, the throwaway CA),
// Postfix's smtp-sink and the fault server. Every message a server stored
// is read back and compared byte for byte where the server keeps the bytes.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {spawnSync, spawn} = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const stream = require('node:stream');
const {Worker} = require('node:worker_threads');

const S = require('./lib/servers.js');
const smtp = require('..');

const ADDON = path.join(__dirname, '..', 'build', 'Release', 'smtpuv.node');
const native = require(ADDON); // the instance index.js loaded
const USER = 'testuser@example.com';
const PASS = 'testpass';
const TOKEN = 'test-oauth-token';

function message(subject, body = 'Hello from Node.\r\n') {
  return `From: a@example.com\r\nTo: b@example.com\r\nSubject: ${subject}\r\n\r\n${body}`;
}

const haveAio = S.pyHas('aiosmtpd');
const haveSink = S.have('smtp-sink');

// ---- the build ------------------------------------------------------------------

test('the addon links no libuv and no libssl/libcrypto of its own', () => {
  const r = spawnSync('sh', [path.join(__dirname, '..', 'scripts', 'check-links.sh'), ADDON],
                      {encoding: 'utf8'});
  assert.equal(r.status, 0, r.stderr);
  const needed = spawnSync('readelf', ['-d', ADDON], {encoding: 'utf8'}).stdout;
  assert.doesNotMatch(needed, /libuv|libssl|libcrypto/);
  // and this process, with the addon loaded, maps none either
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  assert.match(maps, /smtpuv\.node/);
  assert.doesNotMatch(maps, /libuv\.so|libssl\.so|libcrypto\.so/);
});

// ---- aiosmtpd: STARTTLS + AUTH, implicit TLS, trust store, OAuth ------------------

test('aiosmtpd', {skip: !haveAio && 'python3-aiosmtpd missing'}, async (t) => {
  const aio = await S.startAiosmtpd(['--size', String(64 * 1024 * 1024)]);
  t.after(() => aio.stop());
  const ca = S.certs().ca;
  let stored = 0;

  await t.test('STARTTLS + AUTH PLAIN with the throwaway CA, one recipient refused', async () => {
    const client = smtp.createClient({host: '127.0.0.1', port: aio.port, tls: 'starttls', ca,
                                      servername: 'localhost', auth: {user: USER, pass: PASS}});
    const raw = message('starttls auth');
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'],
                                 cc: ['reject-me@example.com'], raw});
    assert.equal(r.status, 'sent');
    assert.deepEqual(r.accepted, ['b@example.com']);
    assert.equal(r.rejected.length, 1);
    assert.equal(r.rejected[0].address, 'reject-me@example.com');
    assert.equal(r.rejected[0].code, 550);
    assert.match(r.rejected[0].text, /recipient rejected/);
    assert.equal(r.code, 'SMTPUV_ENORCPT');
    assert.equal(r.replyCode, 250);
    assert.match(r.response, /^250 /);
    assert.match(r.tls, /^TLSv1\.[23] .*issuer CN=smtpuv-test-CA/);
    await client.close();
    const [m] = (await aio.messages(++stored)).slice(-1);
    assert.equal(m.eml.toString(), raw); // byte-exact
    assert.equal(m.meta.auth, USER);
    assert.ok(m.meta.tls);
    assert.equal(m.meta.mail_from, 'a@example.com');
    assert.deepEqual(m.meta.rcpt_tos, ['b@example.com']);
  });

  await t.test('implicit TLS, Bcc recipients never written into the message', async () => {
    const client = smtp.createClient({host: '127.0.0.1', port: aio.tlsPort, tls: 'implicit', ca,
                                      servername: 'localhost', auth: {user: USER, pass: PASS}});
    const raw = Buffer.from(message('implicit'));
    const r = await client.send({from: 'a@example.com', to: 'b@example.com', bcc: ['c@example.com'], raw});
    assert.equal(r.status, 'sent', r.message);
    assert.deepEqual(r.accepted, ['b@example.com', 'c@example.com']);
    await client.close();
    const [m] = (await aio.messages(++stored)).slice(-1);
    assert.ok(m.eml.equals(raw));
    assert.deepEqual(m.meta.rcpt_tos, ['b@example.com', 'c@example.com']);
  });

  await t.test("default trust store is Node's: the throwaway CA is not in it", async () => {
    const client = smtp.createClient({host: '127.0.0.1', port: aio.port, auth: {user: USER, pass: PASS}});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: message('x')});
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_ECERT');
    assert.equal(r.phase, 'TLS');
    await client.close();
  });

  await t.test('OAuth: the server rejects the first token, the callback is asked again once', async () => {
    const calls = [];
    const client = smtp.createClient({
      host: '127.0.0.1', port: aio.port, ca, servername: 'localhost',
      auth: {user: USER, mechanism: 'XOAUTH2', token: async ({rejected}) => {
        calls.push(rejected);
        await new Promise((r) => setTimeout(r, 5)); // really asynchronous
        return rejected ? TOKEN : 'expired-token';
      }}});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: message('oauth')});
    assert.equal(r.status, 'sent', r.message);
    assert.deepEqual(calls, [false, true]);
    await client.close();
    const [m] = (await aio.messages(++stored)).slice(-1);
    assert.equal(m.meta.auth, USER);
    assert.equal(m.meta.auth_mech, 'XOAUTH2');
  });

  await t.test('OAuth: a token callback whose promise rejects fails the message', async () => {
    let calls = 0;
    const client = smtp.createClient({
      host: '127.0.0.1', port: aio.port, ca, servername: 'localhost',
      auth: {user: USER, mechanism: 'XOAUTH2', token: async () => {
        calls++;
        throw new Error('token endpoint down');
      }}});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: message('x')});
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_EAUTH');
    assert.equal(r.phase, 'AUTH');
    assert.match(r.message, /token endpoint down/);
    assert.equal(calls, 1);
    await client.close();
  });

  await t.test('a streamed 20 MiB body, with back-pressure, stored byte for byte', async () => {
    const line = 'x'.repeat(76) + '\r\n';
    const lines = (20 * 1024 * 1024) / line.length | 0;
    const head = 'From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n';
    const hash = crypto.createHash('sha256');
    let made = 0, pauses = 0, total = 0;
    const src = new stream.Readable({
      highWaterMark: 64 * 1024,
      read() {
        // one 64 KiB piece per read(): produced only as fast as it is taken
        if (made === 0) { this.push(head); hash.update(head); total += head.length; }
        if (made >= lines) { this.push(null); return; }
        const n = Math.min(862, lines - made);
        const piece = line.repeat(n);
        made += n;
        hash.update(piece);
        total += piece.length;
        this.push(piece);
      },
    });
    src.on('pause', () => { pauses++; });
    const client = smtp.createClient({host: '127.0.0.1', port: aio.port, ca, servername: 'localhost',
                                      auth: {user: USER, pass: PASS}, chunking: false});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: src});
    assert.equal(r.status, 'sent', r.message);
    assert.ok(total >= 20 * 1024 * 1024 - line.length);
    assert.ok(pauses > 0, 'the source was paused by back-pressure');
    await client.close();
    const [m] = (await aio.messages(++stored)).slice(-1);
    assert.equal(m.eml.length, total);
    assert.equal(crypto.createHash('sha256').update(m.eml).digest('hex'), hash.digest('hex'));
  });

  await t.test('a body stream that fails: the message fails, nothing is stored', async () => {
    const src = new stream.Readable({read() {}});
    src.push('Subject: broken\r\n\r\npart one\r\n');
    setTimeout(() => src.destroy(new Error('disk on fire')), 20);
    const client = smtp.createClient({host: '127.0.0.1', port: aio.port, ca, servername: 'localhost',
                                      auth: {user: USER, pass: PASS}});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: src});
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_EBODY');
    await client.close();
    assert.equal(fs.readdirSync(aio.outdir).filter((f) => f.endsWith('.json')).length, stored);
  });
});

// ---- smtp-sink: 1,000 pipelined messages ----------------------------------------

test('smtp-sink: 1,000 pipelined messages, every promise settles exactly once',
     {skip: !haveSink && 'postfix (smtp-sink) missing'}, async (t) => {
  const sink = await S.startSink();
  t.after(() => sink.stop());
  const client = smtp.createClient({host: '127.0.0.1', port: sink.port, tls: 'none'});
  const N = 1000;
  const settled = new Array(N).fill(0);
  const results = new Array(N);
  const ps = [];
  for (let i = 0; i < N; i++)
    ps.push(client.send({from: 'a@example.com', to: [`r${i}@example.com`], raw: message(`m${i}`)})
      .then((r) => { settled[i]++; results[i] = r; }, () => { settled[i] += 1000; }));
  assert.equal(client.pending, N);
  await Promise.all(ps);
  assert.deepEqual(settled, new Array(N).fill(1));
  for (const r of results) assert.equal(r.status, 'sent');
  assert.equal(client.pending, 0);
  await client.close();
  // the sink dumped every message (one file each)
  for (let i = 0; i < 200 && sink.count() < N; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(sink.count(), N);
});

test('maxConnections spreads messages over that many connections',
     {skip: !haveAio && 'python3-aiosmtpd missing'}, async (t) => {
  const aio = await S.startAiosmtpd();
  t.after(() => aio.stop());
  const client = smtp.createClient({host: '127.0.0.1', port: aio.port, tls: 'none', maxConnections: 4});
  const rs = await Promise.all(Array.from({length: 40}, (_, i) =>
    client.send({from: 'a@example.com', to: ['b@example.com'], raw: message(`p${i}`)})));
  assert.ok(rs.every((r) => r.status === 'sent'));
  await client.close();
  const ms = await aio.messages(40);
  const peers = new Map();
  for (const m of ms) peers.set(String(m.meta.peer), (peers.get(String(m.meta.peer)) || 0) + 1);
  assert.equal(peers.size, 4);
  for (const n of peers.values()) assert.equal(n, 10);
});

// ---- the fault server -------------------------------------------------------------

async function faultSend(scenario, opts = {}) {
  const srv = await S.startFault(scenario);
  try {
    const client = smtp.createClient({host: '127.0.0.1', port: srv.port, tls: 'none', ...opts});
    const r = await client.send({from: 'a@example.com', to: ['b@example.com'], raw: message(scenario)});
    await client.close();
    return r;
  } finally {
    await srv.stop();
  }
}

test('fault server', {skip: !S.pyHas('socket') && 'python3 missing'}, async (t) => {
  await t.test('connection refused', async () => {
    const r = await faultSend('refuse');
    assert.equal(r.status, 'failed');
    assert.equal(r.phase, 'connect');
    assert.match(r.code, /^SMTPUV_E/);
  });
  await t.test('421 greeting', async () => {
    const r = await faultSend('greeting_421');
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_ESHUTDOWN');
    assert.equal(r.replyCode, 421);
  });
  await t.test('silent after MAIL: the command timeout fails it', async () => {
    // no CHUNKING: with BDAT the whole message would be pipelined behind
    // MAIL and the outcome would be unknown
    const r = await faultSend('silent_after_mail', {timeouts: {command: 300}, chunking: false});
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_ETIMEDOUT');
  });
  await t.test('connection closed after the final dot: unknown', async () => {
    const r = await faultSend('close_after_dot');
    assert.equal(r.status, 'unknown');
    assert.equal(r.phase, 'end-of-data');
  });
});

// ---- abort, close, usage errors -----------------------------------------------------

test('abort() with sends pending: every promise resolves, close() too', async (t) => {
  const srv = await S.startFault('silent_after_mail');
  t.after(() => srv.stop());
  const client = smtp.createClient({host: '127.0.0.1', port: srv.port, tls: 'none', chunking: false});
  const ps = Array.from({length: 5}, (_, i) =>
    client.send({from: 'a@example.com', to: ['b@example.com'], raw: message(`a${i}`)}));
  // abort once the first MAIL is on the wire (the server reads and never answers)
  await srv.seen('C: MAIL');
  const tcp = () => native.handles().filter((h) => h.type === 'tcp').length;
  assert.equal(tcp(), 1); // the client's connection (nothing else here uses TCP)
  const closed = client.abort();
  const rs = await Promise.all(ps);
  await closed;
  assert.equal(tcp(), 0); // no handle of the client is left on the loop
  for (const r of rs) {
    assert.ok(r.status === 'failed' || r.status === 'canceled', r.status);
    assert.equal(r.code, 'SMTPUV_ECANCELED');
  }
  await assert.rejects(client.send({from: 'a@example.com', to: ['b@example.com'], raw: 'x'}),
                       {code: 'SMTPUV_ECLOSED'});
  client.abort(); // again: harmless
});

test('usage errors reject with SMTPUV_E* codes; refusals resolve', async () => {
  const client = smtp.createClient({host: '127.0.0.1', port: 9, tls: 'none'});
  await assert.rejects(client.send({from: 'a@example.com', to: [], raw: 'x'}), {code: 'SMTPUV_EINVAL'});
  await assert.rejects(client.send({from: 'a@example.com', to: ['b@example.com'], raw: 42}),
                       {code: 'SMTPUV_EINVAL'});
  await assert.rejects(client.send({from: 'a@example.com', to: ['b@example.com\r\nRCPT TO:<c@x>'], raw: 'x'}),
                       {code: 'SMTPUV_EADDRESS'});
  await assert.rejects(client.send(null), {code: 'SMTPUV_EINVAL'});
  assert.throws(() => smtp.createClient({host: '127.0.0.1', tls: 'sometimes'}), {code: 'SMTPUV_EINVAL'});
  assert.throws(() => smtp.createClient({}), {code: 'SMTPUV_EINVAL'});
  assert.throws(() => smtp.createClient({host: 'x', ca: 'no certificate here'}), {code: 'SMTPUV_EINVAL'});
  await client.close();
  await assert.rejects(client.send({from: 'a@example.com', to: ['b@example.com'], raw: 'x'}),
                       {code: 'SMTPUV_ECLOSED'});
});

// ---- Node's life cycle: workers, keeping the process alive ----------------------------

function runChild(code, env = {}, withChild = null) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['-e', code], {env: {...process.env, ...env},
                                                    stdio: [withChild ? 'pipe' : 'ignore', 'pipe', 'pipe']});
    if (withChild) withChild(p);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const kill = setTimeout(() => p.kill('SIGKILL'), 30000); // bound, not an assertion
    p.on('exit', (code, signal) => { clearTimeout(kill); resolve({code, signal, out, err}); });
  });
}

const MOD = JSON.stringify(path.join(__dirname, '..'));

test('Worker threads: a Worker sends and exits with its client still open',
     {skip: !haveSink && 'postfix (smtp-sink) missing'}, async (t) => {
  const sink = await S.startSink();
  t.after(() => sink.stop());
  const w = new Worker(`
    const {parentPort, workerData} = require('node:worker_threads');
    const smtp = require(${MOD});
    const c = smtp.createClient({host: '127.0.0.1', port: workerData.port, tls: 'none'});
    c.send({from: 'w@example.com', to: ['b@example.com'], raw: 'Subject: worker\\r\\n\\r\\nhi\\r\\n'})
      .then((r) => parentPort.postMessage(r.status));
    // no close(): the idle connection must not keep the Worker alive, and
    // the environment's cleanup must end it without "open handles"
  `, {eval: true, workerData: {port: sink.port}});
  const msgs = [];
  w.on('message', (m) => msgs.push(m));
  const code = await new Promise((r) => w.on('exit', r));
  assert.equal(code, 0);
  assert.deepEqual(msgs, ['sent']);
  // and a Worker terminated while its send waits for a silent server
  const srv = await S.startFault('silent_after_mail');
  t.after(() => srv.stop());
  const w2 = new Worker(`
    const {parentPort, workerData} = require('node:worker_threads');
    const smtp = require(${MOD});
    const c = smtp.createClient({host: '127.0.0.1', port: workerData.port, tls: 'none'});
    c.send({from: 'w@example.com', to: ['b@example.com'], raw: 'x\\r\\n'});
    parentPort.postMessage('queued');
  `, {eval: true, workerData: {port: srv.port}});
  await new Promise((r) => w2.once('message', r));
  await srv.seen('C: MAIL');
  const code2 = await w2.terminate();
  assert.equal(code2, 1); // terminate()'s exit code; the process is still here
});

test('the process: an idle client does not keep it alive, a pending send does',
     {skip: !haveSink && 'postfix (smtp-sink) missing'}, async (t) => {
  const sink = await S.startSink();
  t.after(() => sink.stop());
  // fire and forget: the script ends at once, the send must still complete,
  // and then the idle (unclosed) connection must not hold the process
  const r = await runChild(`
    const smtp = require(${MOD});
    const c = smtp.createClient({host: '127.0.0.1', port: ${sink.port}, tls: 'none'});
    c.send({from: 'a@example.com', to: ['b@example.com'], raw: 'Subject: bg\\r\\n\\r\\nhi\\r\\n'})
      .then((r) => console.log('result', r.status));
  `);
  assert.equal(r.signal, null, 'the child had to be killed: something kept it alive');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'result sent');
  // a process that exits with a send waiting on a silent server: the cleanup
  // hook aborts it; no crash, no "open handles"
  const srv = await S.startFault('silent_after_mail');
  t.after(() => srv.stop());
  const r2 = await runChild(`
    const smtp = require(${MOD});
    const c = smtp.createClient({host: '127.0.0.1', port: ${srv.port}, tls: 'none'});
    c.send({from: 'a@example.com', to: ['b@example.com'], raw: 'x\\r\\n'});
    // ends when the parent closes our stdin: after the server saw MAIL
    process.stdin.on('data', () => {}).on('end', () => { console.log('exiting'); process.exit(0); });
  `, {}, async (p) => { await srv.seen('C: MAIL'); p.stdin.end(); });
  assert.equal(r2.code, 0, r2.err);
  assert.equal(r2.out.trim(), 'exiting');
});

test('an idle client that became garbage is aborted (its connection closed)',
     {skip: !haveSink && 'postfix (smtp-sink) missing'}, async (t) => {
  const sink = await S.startSink();
  t.after(() => sink.stop());
  const r = await runChild(`
    const smtp = require(${MOD});
    const native = require(${JSON.stringify(ADDON)});
    const tcp = () => native.handles().filter((h) => h.type === 'tcp' && !h.closing).length;
    (async () => {
      let c = smtp.createClient({host: '127.0.0.1', port: ${sink.port}, tls: 'none'});
      const r = await c.send({from: 'a@example.com', to: ['b@example.com'], raw: 'x\\r\\n'});
      const before = tcp();
      c = null;
      for (let i = 0; i < 200 && tcp() > 0; i++) {
        global.gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log(r.status, before, tcp());
    })();
  `, {NODE_OPTIONS: '--expose-gc'});
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), 'sent 1 0');
});
