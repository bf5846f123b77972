// SPDX-License-Identifier: MIT
'use strict';
// The repository's real test servers (tests/servers/), started on 127.0.0.1
// by the tests and stopped by the PID they recorded.
const {spawn, spawnSync} = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const SERVERS = path.join(ROOT, 'tests', 'servers');
const PY = '/usr/bin/python3'; // Debian's, which has aiosmtpd

function tmpdir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `smtpuv-node-${tag}-`));
  fs.chmodSync(d, 0o755);
  return d;
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd}`]).status === 0;
}

function pyHas(mod) {
  return spawnSync(PY, ['-c', `import ${mod}`]).status === 0;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

let pki = null;
/** The throwaway PKI of gen_certs.sh (made once per process). */
function certs() {
  if (pki === null) {
    const d = tmpdir('pki');
    const r = spawnSync('sh', [path.join(SERVERS, 'gen_certs.sh'), d]);
    if (r.status !== 0) throw new Error(`gen_certs.sh: ${r.stderr}`);
    pki = d;
  }
  return {dir: pki, ca: fs.readFileSync(path.join(pki, 'ca.crt')),
          cert: path.join(pki, 'server.crt'), key: path.join(pki, 'server.key')};
}

/** Spawn a server that prints "READY <port> ..." on stdout. */
function startReady(cmd, args, what) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, {stdio: ['ignore', 'pipe', 'pipe']});
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const rl = readline.createInterface({input: p.stdout});
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${what}: no READY: ${err}`)); }, 20000);
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited ${code}: ${err}`)); });
    rl.on('line', (line) => {
      const m = /^READY (\d+)(?: (\d+))?/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      p.removeAllListeners('exit');
      const exited = new Promise((r) => p.once('exit', r));
      resolve({
        port: Number(m[1]), tlsPort: m[2] ? Number(m[2]) : 0, pid: p.pid,
        stop: async () => {
          if (p.exitCode === null && p.signalCode === null) {
            process.kill(p.pid, 'SIGTERM');
            const t = setTimeout(() => { try { process.kill(p.pid, 'SIGKILL'); } catch {} }, 5000);
            await exited;
            clearTimeout(t);
          }
        },
      });
    });
  });
}

/** aiosmtpd_server.py: STARTTLS on `port`, implicit TLS on `tlsPort`. */
async function startAiosmtpd(extra = []) {
  const c = certs();
  const out = tmpdir('aio');
  const s = await startReady(PY, [path.join(SERVERS, 'aiosmtpd_server.py'), '--port', '0',
    '--tls-port', '0', '--cert', c.cert, '--key', c.key, '--outdir', out,
    '--lifetime', '300', ...extra], 'aiosmtpd');
  s.outdir = out;
  /** The stored messages: [{meta, eml}] in arrival order, once `n` are in. */
  s.messages = async (n) => {
    for (let i = 0; i < 400; i++) { // bounded: 20 s
      const metas = fs.readdirSync(out).filter((f) => f.endsWith('.json')).sort();
      if (metas.length >= n)
        return metas.map((f) => ({meta: JSON.parse(fs.readFileSync(path.join(out, f))),
                                  eml: fs.readFileSync(path.join(out, f.replace(/\.json$/, '.eml')))}));
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`aiosmtpd: fewer than ${n} messages stored`);
  };
  return s;
}

/** fault_server.py with one scenario. */
async function startFault(scenario, extra = []) {
  const c = certs();
  const transcript = path.join(tmpdir('fault'), 'transcript');
  const s = await startReady(PY, [path.join(SERVERS, 'fault_server.py'), '--port', '0',
    '--scenario', scenario, '--pki', c.dir, '--lifetime', '120', '--transcript', transcript,
    ...extra], `fault ${scenario}`);
  /** Wait (bounded: 20 s) until the transcript has a line starting with `prefix`. */
  s.seen = async (prefix) => {
    for (let i = 0; i < 400; i++) {
      const t = fs.existsSync(transcript) ? fs.readFileSync(transcript, 'utf8') : '';
      if (t.split('\n').some((l) => l.startsWith(prefix))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`fault server: no "${prefix}" in the transcript`);
  };
  return s;
}

/** Postfix's smtp-sink through smtp_sink.sh (messages dumped in dir/msgs). */
async function startSink(extra = []) {
  const dir = tmpdir('sink');
  const port = await freePort();
  const r = spawnSync('bash', [path.join(SERVERS, 'smtp_sink.sh'), 'start', dir, String(port), ...extra],
                      {encoding: 'utf8', env: {...process.env, LIFETIME: '300'}});
  if (r.status !== 0) throw new Error(`smtp_sink.sh: ${r.stdout} ${r.stderr}`);
  return {
    port, dir,
    count: () => fs.readdirSync(path.join(dir, 'msgs')).length,
    stop: async () => { spawnSync('bash', [path.join(SERVERS, 'smtp_sink.sh'), 'stop', dir]); },
  };
}

module.exports = {ROOT, certs, have, pyHas, freePort, startAiosmtpd, startFault, startSink, tmpdir};
